"""The logger writes the same stable scalar names to metrics.jsonl and TensorBoard, and videos to files."""

import json

import numpy as np

from agents.logger import Logger


def test_scalars_go_to_jsonl_and_tensorboard_and_videos_to_files(tmp_path):
    logger = Logger(tmp_path)
    logger.scalars({"return": 1.5, "length": 10}, prefix="episode/")
    logger.write(100)
    logger.scalar("eval/return", float("nan"))
    logger.write(200)
    files = logger.video("eval/policy", np.zeros((3, 16, 16, 3), np.uint8), step=200)
    logger.close()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == [{"step": 100, "episode/return": 1.5, "episode/length": 10.0}, {"step": 200, "eval/return": "nan"}]
    assert [f.name for f in files] == ["eval-policy-000000200.gif"] and files[0].exists()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0}).Reload()
    assert set(events.Tags()["scalars"]) == {"episode/return", "episode/length", "eval/return"}
    assert events.Scalars("episode/return")[0].value == 1.5
    assert events.Tags()["images"] == ["eval/policy"]
