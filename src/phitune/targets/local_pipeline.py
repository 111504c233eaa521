"""`local-pipeline`: the Azure ML pipeline's steps, in order, as local subprocesses.

Each step runs the exact command line of its component YAML, with `${{inputs.x}}` / `${{outputs.y}}`
replaced by local paths, in a shell, in its own working folder (OUT/steps/<step>/), importing phitune
from the component's `code:` folder (as Azure runs it from the code snapshot), with this interpreter's
`python` first on PATH. Tracking goes where the user's own runs go. Each step's command is reported
before it runs; at the end, the evaluation metrics and where each output is. A step with a PyTorch distribution
gets the variables Azure sets for it (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from phitune.errors import Problem, SubmitError
from phitune.targets.assets import default_output_dir, pipeline_path
from phitune.targets.base import Runner
from phitune.targets.handles import DryRunHandle, LocalRunHandle
from phitune.targets.pipeline_plan import FINETUNE, build_pipeline_document, model_kind
from phitune.targets.pipeline_yaml import PARENT_REF, Node, Pipeline, load_pipeline, render_command
from phitune.targets.report import Progress, Submission, SubmitLog

LOG_TAIL_LINES = 30


class LocalPipelineRunner(Runner):
    def check(self, recipe) -> list[Problem]:
        problems = []
        if model_kind(recipe.model.name) == "azureml":
            problems.append(Problem("model.name", f"{recipe.model.name} is an Azure ML model: it cannot be loaded here",
                                    "use --target maap or maas, or a local / builtin / hub model"))
        for field, value in (("data.train", recipe.data.train), ("data.validation", recipe.data.validation)):
            if value and not Path(value).is_file():
                problems.append(Problem(field, f"{value} is not a local file", "local-pipeline needs local data files"))
        return problems

    def submit(self, recipe, dry_run: bool = False, progress: Progress | None = None) -> Submission:
        """`progress` hears each note and step command as it happens (a run takes minutes)."""
        from phitune.recipe.load import write_resolved

        log = SubmitLog(progress)
        out = Path(self.output_dir or default_output_dir(recipe.name, self.name)).resolve()
        _refuse_a_finished_pipeline(out)
        out.mkdir(parents=True, exist_ok=True)
        resolved = write_resolved(recipe, out / "resolved_recipe.json")
        doc = build_pipeline_document(recipe, resolved, pipeline_path(self.spec.pipeline), self.spec, out)
        job_file = out / "job.yml"
        job_file.write_text(yaml.safe_dump(doc.data, sort_keys=False, width=120))
        log.wrote(resolved)
        log.wrote(job_file)
        pipeline = load_pipeline(job_file, doc.data)
        steps = plan_steps(pipeline, out)
        for note in doc.notes:
            log.note(note)
            log.say(f"note: {note}")
        if dry_run:
            from phitune.targets.dry_run import write_request

            request = {"steps": [{"name": s.node.name, "cwd": str(s.log.parent), "pythonpath": str(s.node.component.code_dir),
                                  "command": s.command} for s in steps]}
            log.wrote(write_request(out, request))
            for step in steps:
                log.say(f"[{step.node.name}] cd {step.log.parent} && PYTHONPATH={step.node.component.code_dir} {step.command}")
            return log.done(DryRunHandle(out, request))
        log.wrote(_write_step_order(out, steps))
        for i, step in enumerate(steps, 1):
            log.say(f"[{i}/{len(steps)}] {step.node.name}: {step.command}")
            run_step(step)
        run_dir = _finetune_run_dir(pipeline, steps)
        log.say(outcome(steps, run_dir))
        return log.done(LocalRunHandle(out, "Completed", run_dir))


class Step:
    def __init__(self, node: Node, command: str, log: Path, outputs: dict[str, Path]):
        self.node, self.command, self.log, self.outputs = node, command, log, outputs


def plan_steps(pipeline: Pipeline, out: Path) -> list[Step]:
    """Every step's rendered command, in order, with local paths for every input and output."""
    produced: dict[tuple[str, str], Path] = {}
    steps = []
    for node in pipeline.ordered_jobs():
        outputs = _output_paths(pipeline, node, out)
        inputs = _input_values(pipeline, node, produced)
        command = render_command(node.component.command, inputs, {k: str(v) for k, v in outputs.items()})
        for name, path in outputs.items():
            produced[(node.name, name)] = path
        steps.append(Step(node, command, out / "steps" / node.name / "std_log.txt", outputs))
    return steps


def run_step(step: Step) -> None:
    step.log.parent.mkdir(parents=True, exist_ok=True)
    for name, path in step.outputs.items():
        kind = step.node.component.outputs[name].get("type", "uri_folder")
        (path.parent if kind == "uri_file" else path).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    # Each step works in its own folder (never inside the package), imports phitune from the component's
    # code folder (as Azure runs it from the code snapshot), and tracks where the user's own runs go:
    # MLFLOW_TRACKING_URI when set, else the default store in the folder the user ran the command from.
    env["PYTHONPATH"] = str(step.node.component.code_dir)
    env.setdefault("PHITUNE_TRACKING_HOME", os.getcwd())
    workdir = step.log.parent
    count = step.node.process_count
    procs = []
    with open(step.log, "w", encoding="utf-8") as log:
        from phitune.distributed.world import free_port

        port = free_port()
        for rank in range(count):
            rank_env = dict(env)
            if step.node.component.data.get("distribution") or step.node.data.get("distribution"):
                rank_env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(count), NODE_RANK="0",
                                MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
            procs.append(subprocess.Popen(["bash", "-c", step.command], cwd=workdir, env=rank_env,
                                          stdout=log, stderr=subprocess.STDOUT))
        codes = [p.wait() for p in procs]
    failed = next((c for c in codes if c != 0), 0)
    if failed:
        tail = step.log.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:]
        raise SubmitError(f"local pipeline step '{step.node.name}' failed (exit {failed})", [Problem(
            f"jobs.{step.node.name}", "last lines of its log:\n      " + "\n      ".join(tail),
            f"full log: {step.log}")])


def _output_paths(pipeline: Pipeline, node: Node, out: Path) -> dict[str, Path]:
    paths = {}
    for name, spec in node.component.outputs.items():
        binding = str(node.outputs.get(name, ""))
        m = PARENT_REF.search(binding)
        base = out / m.group(2) if m and m.group(1) == "outputs" else out / "steps" / node.name / "outputs" / name
        # A uri_file output is a file path inside its output folder (Azure names it after the output).
        paths[name] = base / name if spec.get("type") == "uri_file" else base
    return paths


def _input_values(pipeline: Pipeline, node: Node, produced: dict) -> dict[str, object]:
    values: dict[str, object] = {}
    for name, spec in node.component.inputs.items():
        if "default" in spec:
            values[name] = spec["default"]
    for name, binding in node.inputs.items():
        values[name] = _resolve(pipeline, node, name, binding, produced)
    return values


def _resolve(pipeline: Pipeline, node: Node, name: str, binding, produced: dict):
    if isinstance(binding, dict):
        return binding.get("path", binding.get("value"))
    m = PARENT_REF.fullmatch(str(binding).strip()) if isinstance(binding, str) else None
    if m is None:
        return binding
    if m.group(1) == "inputs":
        value = pipeline.inputs.get(m.group(2))
        return value.get("path", value.get("default")) if isinstance(value, dict) else value
    if m.group(1) == "jobs" and (m.group(2), m.group(4)) in produced:
        return str(produced[(m.group(2), m.group(4))])
    raise SubmitError(f"cannot resolve an input of step {node.name}",
                      [Problem(f"jobs.{node.name}.inputs.{name}", f"{binding} names nothing", "run `phitune lint`")])


def _refuse_a_finished_pipeline(out: Path) -> None:
    """Before anything in `out` is written: a pipeline that ran here to the end is kept. (Its finetune
    step would refuse the finished run only after validate_data had run and job.yml was rewritten.)"""
    import json

    from phitune.models.run_dir import METRICS
    from phitune.targets.handles import STEP_ORDER

    try:
        steps = json.loads((out / STEP_ORDER).read_text(encoding="utf-8"))["steps"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    finished = [Path(p) for s in steps for p in s.get("outputs", {}).values() if (Path(p) / METRICS).is_file()]
    if finished:
        raise SubmitError(f"{out} holds a finished local pipeline", [Problem(
            "--output", f"its fine-tuned run {finished[0]} is complete; nothing was run or changed",
            f"use another --output, or delete {out} to run the pipeline there again")])


def _finetune_run_dir(pipeline: Pipeline, steps: list[Step]) -> Path | None:
    for step in steps:
        if step.node.component.name == FINETUNE:
            return step.outputs.get("run")
    return None


def _write_step_order(out: Path, steps: list[Step]) -> Path:
    """steps.json: the steps in run order, so `phitune logs OUT` prints them in that order."""
    import json

    from phitune.targets.handles import STEP_ORDER

    body = {"steps": [{"name": s.node.name, "log": str(s.log), "outputs": {k: str(v) for k, v in s.outputs.items()}}
                      for s in steps]}
    (out / STEP_ORDER).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return out / STEP_ORDER


def outcome(steps: list[Step], run_dir: Path | None) -> str:
    """The end of a local pipeline: the training summary, each evaluation's metrics, every output."""
    import json

    lines = []
    if run_dir is not None and (Path(run_dir) / "metrics.json").is_file():
        from phitune.run_summary import run_dir_summary

        lines.append(run_dir_summary(run_dir))
    for step in steps:
        for path in step.outputs.values():
            report = path if path.suffix == ".json" else path / "eval.json"
            if report.is_file() and report.name == "eval.json":
                metrics = json.loads(report.read_text(encoding="utf-8")).get("metrics", {})
                shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
                lines.append(f"evaluation ({step.node.name}): {shown}")
    lines.append("outputs:")
    for step in steps:
        for name, path in step.outputs.items():
            lines.append(f"  {step.node.name}.{name}: {path}")
        lines.append(f"  {step.node.name} log: {step.log}")
    return "\n".join(lines)
