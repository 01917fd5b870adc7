r"""Trains the K-FAC ConvNet on a real TensorFlow cluster on this machine.

The launcher starts `--ps` parameter-server tasks and `--workers` worker
tasks as separate processes, each running a `tf.compat.v1.train.Server` on a
free port of 127.0.0.1, and waits for the workers to train to completion
(`--steps` global steps). Every worker runs
`convnet.train_mnist_distributed`, i.e. `convnet.minimize_loss_distributed`:
variables (weights, K-FAC covariances and inverses, momentum) live on the
parameter servers; with three or more workers the first ~60 % compute
gradients (aggregated by `SyncReplicasOptimizer`; task 0 is the chief), the
next ones update the covariance factors and the last one updates the inverses,
one op at a time from an `OpQueue`. This is TensorFlow's own distributed
runtime; to use several machines, run one task per machine with the same
`--cluster`.

  python -m kfac.examples.convnet_distributed --ps 1 --workers 3
  python -m kfac.examples.convnet_distributed --ps 2 --workers 5 --steps 500

Every process is bounded in time (`--timeout`); the launcher kills its
children when it exits, and a child exits by itself if the launcher dies.
The chief's checkpoints go to `--checkpoint_dir` (default: a new temporary
directory), and the launcher ends with a one-line summary that includes how
many K-FAC covariance and inverse variables changed during training and the
trained model's loss and accuracy on the held-out test split (see
`evaluate_checkpoint`).

Internal use: `--job_name ps|worker --task_index N --cluster JSON` runs one
task of a cluster.
"""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from absl import app
from absl import flags
import numpy as np

from kfac.examples import common
from kfac.examples import convnet

__all__ = ["DEFAULTS", "pick_free_ports", "launch", "run_task",
           "factor_changes", "evaluate_checkpoint"]

# Defaults of the launcher (overridable by flags): the single-machine
# ConvNet's, for a shorter job on smaller batches, with statistics on the
# whole batch.
DEFAULTS = dict(convnet.DEFAULTS, steps=200, batch_size=64,
                stats_batch_size=None)

# Start-up notices of TensorFlow's C++ runtime; the launcher does not echo
# them (they stay in the recorded output).
_NOISE = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "cpu_feature_guard",
    "This TensorFlow binary is optimized",
    "To enable the following instructions",
)

# Flags passed on from the launcher to every worker.
_FORWARDED = ("steps", "batch_size", "learning_rate", "damping", "momentum",
              "momentum_type", "estimation_mode", "inv_update_interval",
              "cov_ema_decay", "norm_constraint", "stats_batch_size",
              "data_dir",
              "use_fake_data", "log_every", "seed")


def _define_flags():
  if "ps" in flags.FLAGS:
    return
  common.define_flags()
  flags.DEFINE_integer("ps", 1, "Number of parameter-server tasks.",
                       lower_bound=1)
  flags.DEFINE_integer("workers", 3, "Number of worker tasks.",
                       lower_bound=1)
  flags.DEFINE_float("timeout", 300.0,
                     "Seconds after which every process is stopped.")
  flags.DEFINE_string("checkpoint_dir", "",
                      "Chief's checkpoint directory (default: a new "
                      "temporary directory).")
  flags.DEFINE_enum("job_name", "", ["", "ps", "worker"],
                    "Internal: run one task of the cluster given by "
                    "--cluster instead of launching a cluster.")
  flags.DEFINE_integer("task_index", 0, "Internal: index of the task.")
  flags.DEFINE_string("cluster", "",
                      'Internal: cluster as JSON, {"ps": [...], '
                      '"worker": [...]}.')


def pick_free_ports(count):
  """Returns `count` distinct TCP ports that are free on 127.0.0.1 now.

  The ports are found by binding to port 0 and are released before
  returning, so another program could in principle take one in between.

  Args:
    count: int. Number of ports.

  Returns:
    list of int.
  """
  sockets = []
  try:
    for _ in range(count):
      s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      s.bind(("127.0.0.1", 0))
      sockets.append(s)
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def _kill_group(proc, sig):
  try:
    os.killpg(proc.pid, sig)
  except (ProcessLookupError, PermissionError):
    pass


def _terminate(procs, grace=3.0):
  """Stops the given child processes: SIGTERM, then SIGKILL after `grace`."""
  for proc in procs:
    if proc.poll() is None:
      _kill_group(proc, signal.SIGTERM)
  deadline = time.time() + grace
  for proc in procs:
    try:
      proc.wait(max(0.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
      _kill_group(proc, signal.SIGKILL)
      proc.wait()


def launch(num_ps=1, num_workers=3, timeout=300.0, checkpoint_dir=None,
           task_args=(), verbose=True, python=None):
  """Starts a cluster on 127.0.0.1, trains, and stops it.

  Starts `num_ps` parameter servers and `num_workers` workers, each in its
  own process (own process group) running this module with `--job_name`;
  streams their output (prefixed with the task name); waits until every
  worker has exited or `timeout` seconds have passed; then stops everything
  that is still running.

  Args:
    num_ps: int. Parameter-server tasks (>= 1).
    num_workers: int. Worker tasks (>= 1).
    timeout: float. Seconds before all processes are stopped.
    checkpoint_dir: str or None. The chief's checkpoint directory (None: a
      new temporary directory, which is kept and returned).
    task_args: sequence of str. Extra flags for every worker, e.g.
      `["--steps=50", "--batch_size=32"]`.
    verbose: bool. Print the tasks' output as it arrives.
    python: str or None. Python interpreter (default `sys.executable`).

  Returns:
    dict with `returncodes` (`{"worker:0": rc, ...}`; None for processes
    stopped by the launcher), `outputs` (`{"worker:0": [lines], ...}`),
    `checkpoint_dir`, `seconds` and `timed_out` (bool), `ok` (every worker
    exited with 0 in time).

  Raises:
    ValueError: if `num_ps` or `num_workers` is smaller than 1.
  """
  if num_ps < 1 or num_workers < 1:
    raise ValueError("num_ps and num_workers must be >= 1, got %r and %r"
                     % (num_ps, num_workers))
  if checkpoint_dir is None:
    checkpoint_dir = tempfile.mkdtemp(prefix="kfac_convnet_distributed_")
  ports = pick_free_ports(num_ps + num_workers)
  cluster = {
      "ps": ["127.0.0.1:%d" % p for p in ports[:num_ps]],
      "worker": ["127.0.0.1:%d" % p for p in ports[num_ps:]],
  }
  package_root = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(
      [package_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                        if p])
  env["PYTHONUNBUFFERED"] = "1"
  python = python or sys.executable

  procs, names, outputs, readers = [], [], {}, []
  print_lock = threading.Lock()

  def _reader(name, stream):
    for raw in iter(stream.readline, b""):
      line = raw.decode("utf-8", "replace").rstrip("\n")
      outputs[name].append(line)
      if verbose and not any(noise in line for noise in _NOISE):
        with print_lock:
          print("[%s] %s" % (name, line), flush=True)
    stream.close()

  start = time.time()
  timed_out = False
  try:
    for job in ("ps", "worker"):
      for index in range(len(cluster[job])):
        name = "%s:%d" % (job, index)
        cmd = [python, "-m", "kfac.examples.convnet_distributed",
               "--job_name=%s" % job, "--task_index=%d" % index,
               "--cluster=%s" % json.dumps(cluster),
               "--timeout=%g" % timeout,
               "--checkpoint_dir=%s" % checkpoint_dir]
        if job == "worker":
          cmd += list(task_args)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        procs.append(proc)
        names.append(name)
        outputs[name] = []
        reader = threading.Thread(target=_reader, args=(name, proc.stdout),
                                  daemon=True)
        reader.start()
        readers.append(reader)
    deadline = start + timeout
    for proc, name in zip(procs, names):
      if not name.startswith("worker"):
        continue
      try:
        proc.wait(max(0.0, deadline - time.time()))
      except subprocess.TimeoutExpired:
        timed_out = True
        break
  finally:
    _terminate(procs)
    for reader in readers:
      reader.join(2.0)
  returncodes = {}
  for proc, name in zip(procs, names):
    returncodes[name] = proc.returncode
  ok = (not timed_out and all(
      rc == 0 for name, rc in returncodes.items() if name.startswith("worker")))
  return {"returncodes": returncodes, "outputs": outputs,
          "checkpoint_dir": checkpoint_dir, "seconds": time.time() - start,
          "timed_out": timed_out, "ok": ok}


def factor_changes(checkpoint_dir):
  """Measures how far K-FAC's factor variables moved from their start.

  Covariances and inverses of Kronecker factors start at the identity (and
  diagonal factors' covariances at all-ones); this reads the latest
  checkpoint in `checkpoint_dir`.

  Args:
    checkpoint_dir: str. Directory with the chief's checkpoints.

  Returns:
    dict with `cov` and `inv`: each a dict mapping variable name to the
    largest absolute difference from the initial value.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  reader = tf.train.load_checkpoint(checkpoint_dir)
  changes = {"cov": {}, "inv": {}}
  for name in sorted(reader.get_variable_to_shape_map()):
    base = name.rsplit("/", 1)[-1]
    if base == "cov":
      kind = "cov"
    elif base.startswith("inv_damp") or base.startswith("matpower_"):
      kind = "inv"
    else:
      continue
    value = reader.get_tensor(name)
    if value.ndim == 2 and value.shape[0] == value.shape[1] and "diag" not in (
        name):
      start = np.eye(value.shape[0], dtype=value.dtype)
    else:
      start = np.ones_like(value)
    changes[kind][name] = float(np.max(np.abs(value - start)))
  return changes


def evaluate_checkpoint(checkpoint_dir, data_dir="", use_fake_data=False):
  """Loss and accuracy of the chief's last checkpoint on the test split.

  Rebuilds the ConvNet (`convnet.build_model`) on placeholders, restores its
  weights from the latest checkpoint in `checkpoint_dir` and evaluates it on
  the whole test split (`mnist.load_arrays(..., split="test")`).

  Args:
    checkpoint_dir: str. Directory with the chief's checkpoints.
    data_dir: str or None. As in `mnist.load_arrays`.
    use_fake_data: bool. As in `mnist.load_arrays`.

  Returns:
    `(loss, accuracy)` floats, or None when the data has no test split.
  """
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from kfac import layer_collection as lc
  from kfac.examples import mnist
  # pylint: enable=g-import-not-at-top
  if not mnist.has_test_split(data_dir, use_fake_data):
    return None
  images, labels = mnist.load_arrays(data_dir, flatten_images=False,
                                     split="test")
  with tf.Graph().as_default():
    examples = tf.compat.v1.placeholder(tf.float32, (None,) + images.shape[1:])
    targets = tf.compat.v1.placeholder(tf.int64, [None])
    loss, accuracy = convnet.build_model(examples, targets, 10,
                                         lc.LayerCollection())
    saver = tf.compat.v1.train.Saver(tf.compat.v1.trainable_variables())
    with tf.compat.v1.Session() as sess:
      saver.restore(sess, tf.train.latest_checkpoint(checkpoint_dir))
      loss_, accuracy_ = sess.run([loss, accuracy],
                                  {examples: images, targets: labels})
  return float(loss_), float(accuracy_)


def _watchdog(timeout):
  """Ends this process after `timeout` seconds or when its parent dies."""
  parent = os.getppid()
  deadline = time.time() + timeout

  def _watch():
    while True:
      time.sleep(0.5)
      if time.time() > deadline:
        print("timed out after %g s, exiting" % timeout, flush=True)
        os._exit(124)  # pylint: disable=protected-access
      if os.getppid() != parent:
        os._exit(125)  # pylint: disable=protected-access
  thread = threading.Thread(target=_watch, daemon=True)
  thread.start()


def _quiet_shutdown_of_queue_runners():
  """Drops the `CancelledError` tracebacks of queue-runner threads.

  When the chief's session closes, `SyncReplicasOptimizer`'s queue runner
  is cancelled in the middle of its `TakeGrad` and its thread ends with a
  `CancelledError`, which Python would print; that is the normal end of
  training, so it is not printed. Other thread exceptions are.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  default_hook = threading.excepthook

  def hook(args):
    if not issubclass(args.exc_type, tf.errors.CancelledError):
      default_hook(args)
  threading.excepthook = hook


def run_task(job_name, task_index, cluster, cfg, checkpoint_dir=None,
             timeout=300.0):
  """Runs one task of the cluster in this process.

  A parameter server serves until it is killed; a worker trains with
  `convnet.train_mnist_distributed` and returns.

  Args:
    job_name: str. "ps" or "worker".
    task_index: int. Index of the task in its job.
    cluster: dict. `{"ps": [host:port, ...], "worker": [host:port, ...]}`.
    cfg: dict. Training settings (keys of `DEFAULTS`).
    checkpoint_dir: str or None. The chief's checkpoint directory.
    timeout: float. Seconds after which the process exits by itself.

  Returns:
    For a worker, the last accuracy it saw (float).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  _watchdog(timeout)
  _quiet_shutdown_of_queue_runners()
  num_ps = len(cluster["ps"])
  num_workers = len(cluster["worker"])
  if job_name == "ps":
    device_filters = ["/job:ps"]
  else:
    device_filters = ["/job:ps", "/job:worker/task:%d" % task_index]
  config = tf.compat.v1.ConfigProto(
      intra_op_parallelism_threads=1, inter_op_parallelism_threads=2,
      device_filters=device_filters)
  server = tf.compat.v1.train.Server(
      tf.train.ClusterSpec(cluster), job_name=job_name,
      task_index=task_index, config=config)
  if job_name == "ps":
    print("ps %d serving at %s" % (task_index, cluster["ps"][task_index]),
          flush=True)
    server.join()
    return None
  print("worker %d (%s) at %s, %d ps, %d workers" % (
      task_index, convnet.task_role(task_index, num_workers),
      cluster["worker"][task_index], num_ps, num_workers), flush=True)
  hparams = {k: cfg[k] for k in ("learning_rate", "damping", "momentum",
                                 "momentum_type", "estimation_mode",
                                 "inv_update_interval", "cov_ema_decay",
                                 "norm_constraint")}
  with tf.Graph().as_default():
    return convnet.train_mnist_distributed(
        task_index, num_workers, num_ps, server.target, cfg["data_dir"],
        None, cfg["use_fake_data"], steps=cfg["steps"],
        batch_size=cfg["batch_size"], checkpoint_dir=checkpoint_dir,
        stats_batch_size=cfg["stats_batch_size"],
        session_config=config, log_every=cfg["log_every"], seed=cfg["seed"],
        wait_for_workers_secs=min(120.0, timeout), **hparams)


def main(argv):
  """Launches a local cluster, or runs one of its tasks (`--job_name`).

  Args:
    argv: list of str. Positional command-line arguments (unused).
  """
  del argv
  common.quiet_logs()
  cfg = common.flag_values(DEFAULTS)
  if cfg["optimizer"] != "kfac":
    raise common.flag_error("optimizer",
                            "convnet_distributed trains with K-FAC only")
  common.check_data_flags(cfg)
  if flags.FLAGS.job_name:
    run_task(flags.FLAGS.job_name, flags.FLAGS.task_index,
             json.loads(flags.FLAGS.cluster), cfg,
             checkpoint_dir=flags.FLAGS.checkpoint_dir or None,
             timeout=flags.FLAGS.timeout)
    sys.stdout.flush()
    os._exit(0)  # pylint: disable=protected-access
  task_args = []
  for name in _FORWARDED:
    if flags.FLAGS[name].present:
      task_args.append("--%s=%s" % (name, getattr(flags.FLAGS, name)))
  num_ps, num_workers = flags.FLAGS.ps, flags.FLAGS.workers
  print("convnet_distributed: starting %d ps + %d workers on 127.0.0.1"
        % (num_ps, num_workers), flush=True)
  result = launch(num_ps, num_workers, timeout=flags.FLAGS.timeout,
                  checkpoint_dir=flags.FLAGS.checkpoint_dir or None,
                  task_args=task_args)
  chief_done = [line for line in result["outputs"].get("worker:0", [])
                if ": done," in line]
  try:
    changes = factor_changes(result["checkpoint_dir"])
    moved = "%d/%d covariances and %d/%d inverses changed" % (
        sum(v > 0 for v in changes["cov"].values()), len(changes["cov"]),
        sum(v > 0 for v in changes["inv"].values()), len(changes["inv"]))
    held_out = evaluate_checkpoint(result["checkpoint_dir"], cfg["data_dir"],
                                   cfg["use_fake_data"])
    held_out = ("held-out test set: loss %.4f, accuracy %.3f; " % held_out
                if held_out else "")
  except Exception as e:  # pylint: disable=broad-except
    moved = "no checkpoint to inspect (%s)" % type(e).__name__
    held_out = ""
  status = ("ok" if result["ok"] else
            "TIMED OUT" if result["timed_out"] else "FAILED")
  print("convnet_distributed: %s, %d ps + %d workers in %.1f s; %s; %s; %s"
        "checkpoint in %s" % (
            status, num_ps, num_workers, result["seconds"],
            chief_done[-1].split(": done, ", 1)[-1] if chief_done
            else "chief did not finish", moved, held_out,
            result["checkpoint_dir"]),
        flush=True)
  if not result["ok"]:
    sys.exit(1)


if __name__ == "__main__":
  _define_flags()
  common.show_defaults(DEFAULTS)
  flags.adopt_module_key_flags(common)
  app.run(main)
