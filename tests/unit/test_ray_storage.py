"""What a Ray node finds of the run folder (:func:`seer_torch.backends.ray_backend.storage_problem`),
the check behind ``RayBackend.check_storage`` and each job's agents: pure, no Ray needed."""

from __future__ import annotations

from seer_torch.backends.ray_backend import storage_problem
from seer_torch.runfiles import atomic_write_json, atomic_write_text


def test_a_node_that_sees_the_tuners_token_has_no_problem(tmp_path):
    atomic_write_text(tmp_path / "probe", "4f2a")
    assert storage_problem(tmp_path / "probe", "4f2a") is None
    atomic_write_json(tmp_path / "job.json", {"token": "9c1e", "world_size": 2})  # an agent's check
    assert storage_problem(tmp_path / "job.json", "9c1e") is None


def test_a_node_on_its_own_disk_is_told_what_it_found(tmp_path):
    missing = storage_problem(tmp_path / "run" / "probe", "4f2a")
    assert missing == f"{tmp_path / 'run' / 'probe'} does not exist there"
    atomic_write_text(tmp_path / "probe", "an older run's token")
    other = f"{tmp_path / 'probe'} there is another file (not the tuner's)"
    assert storage_problem(tmp_path / "probe", "4f2a") == other
    (tmp_path / "folder").mkdir()
    assert "cannot be read there (IsADirectoryError" in storage_problem(tmp_path / "folder", "4f2a")
