"""Tests of the distributed ConvNet example on a real local cluster.

`convnet_distributed.launch` starts 1 parameter server and 3 workers (one
training, one updating covariances, one updating inverses) as separate
processes with `tf.compat.v1.train.Server`s on free 127.0.0.1 ports, trains
a short job, and stops everything; every process is bounded in time. The
workers report through JSON result files, never through their log text.
One test per role kills that task while the cluster trains and checks that
the launcher names it, stops the rest and cleans up.
"""

import os
import signal
import socket

from absl import flags
import pytest

from kfac.examples import convnet_distributed

# A short job on the 8x8 digits.
_TASK_ARGS = ["--batch_size=32", "--log_every=1", "--inv_update_interval=5"]


def test_pick_free_ports():
  ports = convnet_distributed.pick_free_ports(4)
  assert len(set(ports)) == 4
  for port in ports:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
      s.bind(("127.0.0.1", port))


def test_launch_rejects_empty_cluster():
  with pytest.raises(ValueError, match="num_workers"):
    convnet_distributed.launch(num_ps=1, num_workers=0)


@pytest.mark.parametrize(
  "returncode, text",
  [
    (0, "exit status 0"),
    (1, "exit status 1"),
    (-9, "killed by SIGKILL (exit status -9)"),
    (-15, "killed by SIGTERM (exit status -15)"),
    (None, "still running"),
  ],
)
def test_describe_exit(returncode, text):
  assert convnet_distributed.describe_exit(returncode) == text


@pytest.mark.parametrize(
  "flag, message",
  [
    ("--workers=0", "flag --workers=0: 0 is not a positive integer"),
    ("--ps=0", "flag --ps=0: 0 is not a positive integer"),
    (
      "--optimizer=adam",
      "flag --optimizer=adam: convnet_distributed trains with K-FAC only",
    ),
    ("--batch_size=0", "flag --batch_size=0: 0 is not a positive integer"),
  ],
)
def test_bad_flags_are_flag_errors(flag, message):
  """Bad launcher flags fail when parsed, with absl's one-line error.

  (tests/test_examples.py checks, in a subprocess, that such an error ends
  a program with that line and no traceback.)
  """
  fv = flags.FlagValues()
  convnet_distributed.define_flags(fv)
  fv(["prog"])  # The defaults are fine.
  fv.unparse_flags()
  with pytest.raises(flags.IllegalFlagValueError) as raised:
    fv(["prog", flag])
  assert message in str(raised.value)
  assert "\n" not in str(raised.value)


def _logs(result):
  return "\n".join(
    "[%s] %s" % (name, line)
    for name, lines in result["outputs"].items()
    for line in lines
  )


@pytest.mark.slow
def test_cluster_trains_and_updates_factors(tmp_path):
  checkpoint_dir = str(tmp_path / "ckpt")
  result = convnet_distributed.launch(
    num_ps=1,
    num_workers=3,
    timeout=120.0,
    checkpoint_dir=checkpoint_dir,
    task_args=["--steps=60"] + _TASK_ARGS,
    verbose=False,
  )
  logs = _logs(result)
  assert result["ok"], logs
  assert result["failure"] is None and result["message"] is None, logs
  assert not result["timed_out"], logs
  results = result["results"]
  assert [results["worker:%d" % i]["role"] for i in range(3)] == [
    "train",
    "cov",
    "inv",
  ], results
  # The chief stops exactly at --steps, and every worker saw the end.
  # (A SyncReplicasOptimizer step that only delivers a gradient, without
  # an update yet, counts as a local step: the chief may run one more.)
  assert results["worker:0"]["global_step"] == 60, results
  assert 60 <= results["worker:0"]["local_steps"] <= 62, results
  for name in ("worker:1", "worker:2"):
    assert results[name]["global_step"] >= 60, results
    assert results[name]["local_steps"] >= 1, results
  assert 0.0 <= results["worker:0"]["accuracy"] <= 1.0, results
  assert results["worker:2"]["loss"] is None, results  # No forward pass.
  # The chief saved a final checkpoint in which K-FAC's statistics moved.
  assert result["checkpoint_dir"] == checkpoint_dir
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
  assert (
    convnet_distributed.evaluate_checkpoint(checkpoint_dir, use_fake_data=True)
    is None
  )


@pytest.mark.slow
@pytest.mark.parametrize(
  "victim, role",
  [
    ("ps:0", "ps"),
    ("worker:0", "train"),
    ("worker:1", "cov"),
    ("worker:2", "inv"),
  ],
)
def test_dead_task_is_reported_and_cluster_stopped(
  victim, role, monkeypatch, tmp_path
):
  """Killing one task of each role ends the run at once, loudly and cleanly.

  The victim is killed once every worker has logged a training step; a
  cluster that hung would instead run into the 300 s timeout (and
  `timed_out` would be set).
  """
  made = []
  real_mkdtemp = convnet_distributed.tempfile.mkdtemp

  def mkdtemp(*args, **kwargs):
    made.append(real_mkdtemp(*args, **kwargs))
    return made[-1]

  monkeypatch.setattr(convnet_distributed.tempfile, "mkdtemp", mkdtemp)
  killed = []

  def poll(procs, outputs):
    if killed:
      return
    if all(
      any(" step " in line for line in outputs["worker:%d" % i])
      for i in range(3)
    ):
      os.killpg(procs[victim].pid, signal.SIGKILL)
      killed.append(victim)

  result = convnet_distributed.launch(
    num_ps=1,
    num_workers=3,
    timeout=300.0,
    task_args=["--steps=100000"] + _TASK_ARGS,
    verbose=False,
    poll=poll,
  )
  logs = _logs(result)
  assert killed == [victim], logs
  assert not result["ok"], logs
  assert not result["timed_out"], logs
  failure = result["failure"]
  assert failure["task"] == victim, (failure, logs)
  assert failure["role"] == role, failure
  assert failure["returncode"] == -signal.SIGKILL, failure
  assert failure["last_lines"] == result["outputs"][victim][-12:], failure
  assert failure["last_lines"], failure
  message = result["message"]
  assert message.startswith(
    "convnet_distributed: %s (%s): " % (victim, role)
  ), message
  assert "killed by SIGKILL (exit status -9)" in message, message
  assert failure["last_lines"][-1] in message, message
  # Everything else was stopped, and the temporary directories are gone.
  assert all(rc is not None for rc in result["returncodes"].values()), result
  assert len(made) == 2, made  # Checkpoints and result files.
  assert not any(os.path.exists(d) for d in made), made
  assert result["checkpoint_dir"] is None
