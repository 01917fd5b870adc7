"""Tests of the distributed ConvNet example on a real local cluster.

`convnet_distributed.launch` starts 1 parameter server and 3 workers (one
training, one updating covariances, one updating inverses) as separate
processes with `tf.compat.v1.train.Server`s on free 127.0.0.1 ports, trains
a short job, and stops everything; every process is bounded in time.
"""

import os
import re
import socket
import subprocess
import sys

import pytest

from kfac.examples import convnet_distributed


def test_pick_free_ports():
  ports = convnet_distributed.pick_free_ports(4)
  assert len(set(ports)) == 4
  for port in ports:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
      s.bind(("127.0.0.1", port))


def test_launch_rejects_empty_cluster():
  with pytest.raises(ValueError, match="num_workers"):
    convnet_distributed.launch(num_ps=1, num_workers=0)


@pytest.mark.parametrize("flag, message", [
    ("--workers=0", "flag --workers=0: 0 is not a positive integer"),
    ("--optimizer=adam",
     "FATAL Flags error: --optimizer: convnet_distributed trains with K-FAC "
     "only"),
])
@pytest.mark.slow
def test_bad_flags_are_one_line_errors(flag, message):
  """Bad launcher flags end with absl's one-line error, not a traceback."""
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run(
      [sys.executable, "-m", "kfac.examples.convnet_distributed", flag],
      cwd=repo, env=dict(os.environ, PYTHONPATH=repo), capture_output=True,
      text=True, timeout=120)
  assert proc.returncode == 1, proc.stderr
  assert message in proc.stderr, proc.stderr
  assert "Traceback" not in proc.stderr, proc.stderr
  assert "--helpshort" in proc.stderr.splitlines()[-1]


@pytest.mark.slow
def test_cluster_trains_and_updates_factors(tmp_path):
  checkpoint_dir = str(tmp_path / "ckpt")
  result = convnet_distributed.launch(
      num_ps=1, num_workers=3, timeout=120.0, checkpoint_dir=checkpoint_dir,
      task_args=["--steps=60", "--batch_size=32", "--log_every=10",
                 "--inv_update_interval=5"],
      verbose=False)
  logs = "\n".join("[%s] %s" % (name, line)
                   for name, lines in result["outputs"].items()
                   for line in lines)
  assert result["ok"], logs
  assert not result["timed_out"], logs
  outputs = result["outputs"]
  assert any("worker 0 (train): done" in l for l in outputs["worker:0"]), logs
  assert any("worker 1 (cov): done" in l for l in outputs["worker:1"]), logs
  assert any("worker 2 (inv): done" in l for l in outputs["worker:2"]), logs
  chief_done = [l for l in outputs["worker:0"] if ": done," in l]
  assert chief_done, logs
  global_step = int(re.search(r"global step (\d+)", chief_done[0]).group(1))
  assert global_step >= 59, logs
  # The chief saved a final checkpoint in which K-FAC's statistics moved.
  assert os.path.exists(os.path.join(checkpoint_dir, "checkpoint")), logs
  changes = convnet_distributed.factor_changes(checkpoint_dir)
  # 3 layers: 3 input and 3 output Kronecker factors.
  assert len(changes["cov"]) == 6, changes
  assert len(changes["inv"]) == 6, changes
  assert all(v > 1e-6 for v in changes["cov"].values()), changes
  assert all(v > 1e-6 for v in changes["inv"].values()), changes
  # The trained model restores from the checkpoint and is evaluated on the
  # held-out digits (60 steps: far better than chance, about 0.95).
  loss, accuracy = convnet_distributed.evaluate_checkpoint(checkpoint_dir)
  assert loss > 0 and 0.5 < accuracy <= 1.0, (loss, accuracy)
  assert convnet_distributed.evaluate_checkpoint(
      checkpoint_dir, use_fake_data=True) is None
