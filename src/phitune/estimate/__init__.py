"""Memory estimates for a recipe (`phitune estimate`) and the measurements that check them.

zero.py      model-state bytes per device: the ZeRO paper's formulas, plus frozen/quantized bases
shapes.py    parameter counts and layer shapes from the model config (meta device, no weights)
memory.py    per-device weights, gradients, optimizer states, activations; fit; largest micro-batch
advice.py    what to change when it does not fit (each suggestion re-estimated)
report.py    the text and JSON `phitune estimate` prints
measure.py   peak RSS of a few real CPU training steps (in a fresh process) to validate the estimate
"""
