"""Import hygiene: `phitune --help` stays light, the training core never imports azure."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_help_does_not_import_torch_or_azure():
    mods = _modules_after("import sys\nfrom phitune.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass")
    assert "torch" not in mods
    assert not any(m.startswith("azure") for m in mods)


def test_training_core_does_not_import_azure():
    mods = _modules_after("import phitune.training, phitune.data, phitune.models.loader, phitune.models.adapters")
    assert not any(m.startswith("azure") for m in mods)
