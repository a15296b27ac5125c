"""The demo-work benchmark counts each stage's work as the plan configures it, and times a plan.

No timing assertions: seconds depend on the machine and its load.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.helpers import net_of, quiet_trainer, synthetic_voc_data


def tiny_plan(folder: Path, stages: dict[str, int]) -> Path:
    """A staged plan on 32 px generated data: ``{"FCN32s": steps, ...}``, validation every 2 steps."""
    generator = {"image_size": 32, "num_train": 4, "num_val": 2}
    data = synthetic_voc_data(folder / "data", generator, batch_size=2, num_workers=0)
    trainer = quiet_trainer(val_every=2, max_epochs=-1, enable_model_summary=False)
    (folder / "base.yaml").write_text(
        yaml.safe_dump({"seed_everything": 0, "trainer": trainer, "data": data})
    )
    for name, steps in stages.items():
        model = {"class_path": f"fcn_lightning.{name}", "init_args": {"width": 0.0625, "batch_norm": True}}
        (folder / f"{name}.yaml").write_text(
            yaml.safe_dump({"trainer": {"max_steps": steps}, "model": model})
        )
    plan = {"base": ["base.yaml"], "stages": {name: f"{name}.yaml" for name in stages}}
    (folder / "staged.yaml").write_text(yaml.safe_dump(plan))
    return folder / "staged.yaml"


def test_each_stage_is_counted_as_configured(bench: ModuleType, tmp_path: Path) -> None:
    plan = tiny_plan(tmp_path, {"FCN32s": 4, "FCN8s": 2})
    work = [
        bench.stage_work(n, [tmp_path / "base.yaml", tmp_path / f"{n}.yaml"], []) for n in ("FCN32s", "FCN8s")
    ]
    assert [(w.steps, w.batch, w.size, w.validations, w.val_images) for w in work] == [
        (4, 2, (32, 32), 3, 2),  # every 2 steps, and the selected checkpoint scored once more
        (2, 2, (32, 32), 2, 2),
    ]
    net = net_of("fcn32s", 21, width=0.0625, batch_norm=True)
    assert work[0].train_flops == 4 * bench.count_flops(net, 2, (32, 32), 3, train=True)
    assert work[0].val_flops == 3 * 2 * bench.count_flops(net, 1, (32, 32), 3, train=False)
    assert work[1].train_flops / 2 > work[0].train_flops / 4  # FCN-8s computes more per step than 32s

    text = bench.main(["--config", str(plan), "--out", str(tmp_path / "out.md")])
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split(" | ")[0] for r in rows] == ["| stage", "| FCN32s", "| FCN8s", "| all"]
    assert "| 4 x 2 | 32x32 | 3 x 2 |" in rows[1]
    assert (tmp_path / "out.md").read_text().strip() == text.strip()


@pytest.mark.usefixtures("one_thread")  # puts the thread count back after --threads
def test_time_runs_the_plan_and_reports_seconds_per_tflop(bench: ModuleType, tmp_path: Path) -> None:
    plan = tiny_plan(tmp_path, {"FCN32s": 2})
    text = bench.main(["--config", str(plan), "--time", "--threads", "1"])
    assert "s per TFLOP, torch threads 1." in text
    with pytest.raises(SystemExit):
        bench.main(["--config", str(plan), "--threads", "0"])
