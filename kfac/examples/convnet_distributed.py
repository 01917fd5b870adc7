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

The launcher watches its processes: when a task dies (a parameter server
at any time, a worker with a non-zero exit status), it reports the task, its
exit status and its last log lines within a second or so, stops the rest of
the cluster and removes the temporary directories it made. Every process is
also bounded in time (`--timeout`), and a child exits by itself if the
launcher dies. Each worker writes a small JSON result file (its role, local
steps, the global step when it stopped, last loss and accuracy) that the
launcher reads. The chief's checkpoints go to `--checkpoint_dir` (default: a
new temporary directory), and the launcher ends with a one-line summary that
includes the chief's global step (which equals `--steps`), how many K-FAC
covariance and inverse variables changed during training and the trained
model's loss and accuracy on the held-out test split (see
`evaluate_checkpoint`).

Internal use: `--job_name ps|worker --task_index N --cluster JSON
--result_file PATH` runs one task of a cluster.
"""

import json
import math
import os
import shutil
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

__all__ = [
  "DEFAULTS",
  "pick_free_ports",
  "launch",
  "run_task",
  "describe_exit",
  "factor_changes",
  "evaluate_checkpoint",
]

# Defaults of the launcher (overridable by flags): the single-machine
# ConvNet's, for a shorter job on smaller batches, with statistics on the
# whole batch.
DEFAULTS = convnet.DEFAULTS.replace(
  steps=200, batch_size=64, stats_batch_size=None
)

# Log lines of a dead task that the launcher reports.
_TAIL_LINES = 12

# Start-up notices of TensorFlow's C++ runtime; the launcher does not echo
# them (they stay in the recorded output).
_NOISE = (
  "All log messages before absl::InitializeLog() is called",
  "oneDNN custom operations are on",
  "cpu_feature_guard",
  "This TensorFlow binary is optimized",
  "To enable the following instructions",
  "oneDNN supports DT_INT32 only",
)

# Flags passed on from the launcher to every worker.
_FORWARDED = (
  "steps",
  "batch_size",
  "learning_rate",
  "damping",
  "momentum",
  "momentum_type",
  "estimation_mode",
  "inv_update_interval",
  "cov_ema_decay",
  "norm_constraint",
  "stats_batch_size",
  "data_dir",
  "use_fake_data",
  "log_every",
  "seed",
)


def define_flags(flag_values=flags.FLAGS):
  """Defines the launcher's flags: the examples' ones and the cluster's.

  Args:
    flag_values: `flags.FlagValues` to define the flags in.
  """
  fv = flag_values
  common.define_flags(DEFAULTS, fv)
  flags.register_validator(
    "optimizer",
    lambda value: value == "kfac",
    "convnet_distributed trains with K-FAC only",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "ps", 1, "Number of parameter-server tasks.", lower_bound=1, flag_values=fv
  )
  flags.DEFINE_integer(
    "workers", 3, "Number of worker tasks.", lower_bound=1, flag_values=fv
  )
  flags.DEFINE_float(
    "timeout",
    300.0,
    "Seconds after which every process is stopped.",
    lower_bound=1.0,
    flag_values=fv,
  )
  flags.DEFINE_enum(
    "job_name",
    "",
    ["", "ps", "worker"],
    "Internal: run one task of the cluster given by "
    "--cluster instead of launching a cluster.",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "task_index",
    0,
    "Internal: index of the task.",
    lower_bound=0,
    flag_values=fv,
  )
  flags.DEFINE_string(
    "cluster",
    "",
    'Internal: cluster as JSON, {"ps": [...], "worker": [...]}.',
    flag_values=fv,
  )
  flags.DEFINE_string(
    "result_file",
    "",
    "Internal: where a worker writes its JSON result.",
    flag_values=fv,
  )


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


def describe_exit(returncode):
  """Says how a process ended, e.g. "killed by signal SIGKILL".

  Args:
    returncode: int or None, a `subprocess` return code (negative: a
      signal; None: still running when the launcher stopped it).

  Returns:
    str.
  """
  if returncode is None:
    return "still running"
  if returncode < 0:
    try:
      name = signal.Signals(-returncode).name
    except ValueError:
      name = "signal %d" % -returncode
    return "killed by %s (exit status %d)" % (name, returncode)
  return "exit status %s" % returncode


def _read_result(path):
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def launch(
  num_ps=1,
  num_workers=3,
  timeout=300.0,
  checkpoint_dir=None,
  task_args=(),
  verbose=True,
  python=None,
  poll=None,
):
  """Starts a cluster on 127.0.0.1, trains, and stops it.

  Starts `num_ps` parameter servers and `num_workers` workers, each in its
  own process (own process group) running this module with `--job_name`;
  streams their output (prefixed with the task name); and watches them
  until every worker has finished. A parameter server that exits, or a
  worker that exits with a non-zero status or without writing its result
  file, is a failure: the launcher records which task died, how and its
  last log lines, and stops at once. In every case it then stops what is
  still running; on failure or timeout it also removes the temporary
  directories it made (the result files' and, when it made it, the
  checkpoint directory); on success it keeps the checkpoint directory.

  Args:
    num_ps: int. Parameter-server tasks (>= 1).
    num_workers: int. Worker tasks (>= 1).
    timeout: float. Seconds before all processes are stopped.
    checkpoint_dir: str or None. The chief's checkpoint directory (None: a
      new temporary directory, kept and returned when training succeeds).
    task_args: sequence of str. Extra flags for every worker, e.g.
      `["--steps=50", "--batch_size=32"]`.
    verbose: bool. Print the tasks' output as it arrives, and a failure.
    python: str or None. Python interpreter (default `sys.executable`).
    poll: callable or None. Called about every 0.1 s while the cluster runs,
      with `{task name: subprocess.Popen}` and `{task name: [log lines]}`
      (e.g. to watch or disturb the cluster in a test).

  Returns:
    dict with `ok` (every worker finished and wrote its result in time),
    `results` (`{"worker:0": {...}, ...}`, the workers' JSON results),
    `failure` (None, or a dict with `task`, `returncode`, `reason` and
    `last_lines`; also set on timeout), `message` (a one-paragraph account
    of the failure, or None), `returncodes` (`{"worker:0": rc, ...}`),
    `outputs` (`{"worker:0": [lines], ...}`), `checkpoint_dir` (None if it
    was a temporary directory that was removed), `seconds` and `timed_out`.

  Raises:
    ValueError: if `num_ps` or `num_workers` is smaller than 1.
  """
  if num_ps < 1 or num_workers < 1:
    raise ValueError(
      "num_ps and num_workers must be >= 1, got %r and %r"
      % (num_ps, num_workers)
    )
  made_dirs = []
  if checkpoint_dir is None:
    checkpoint_dir = tempfile.mkdtemp(prefix="kfac_convnet_distributed_")
    made_dirs.append(checkpoint_dir)
  result_dir = tempfile.mkdtemp(prefix="kfac_convnet_distributed_results_")
  made_dirs.append(result_dir)
  ports = pick_free_ports(num_ps + num_workers)
  cluster = {
    "ps": ["127.0.0.1:%d" % p for p in ports[:num_ps]],
    "worker": ["127.0.0.1:%d" % p for p in ports[num_ps:]],
  }
  package_root = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  )
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(
    [package_root]
    + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
  )
  env["PYTHONUNBUFFERED"] = "1"
  python = python or sys.executable

  procs, outputs, readers, result_files = {}, {}, [], {}
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
  failure = None
  try:
    for job in ("ps", "worker"):
      for index in range(len(cluster[job])):
        name = "%s:%d" % (job, index)
        cmd = [
          python,
          "-m",
          "kfac.examples.convnet_distributed",
          "--job_name=%s" % job,
          "--task_index=%d" % index,
          "--cluster=%s" % json.dumps(cluster),
          "--timeout=%g" % timeout,
          "--checkpoint_dir=%s" % checkpoint_dir,
        ]
        if job == "worker":
          result_files[name] = os.path.join(
            result_dir, "worker_%d.json" % index
          )
          cmd += ["--result_file=%s" % result_files[name]]
          cmd += list(task_args)
        outputs[name] = []
        procs[name] = subprocess.Popen(
          cmd,
          stdout=subprocess.PIPE,
          stderr=subprocess.STDOUT,
          env=env,
          start_new_session=True,
        )
        reader = threading.Thread(
          target=_reader, args=(name, procs[name].stdout), daemon=True
        )
        reader.start()
        readers.append(reader)
    deadline = start + timeout
    while True:
      if poll is not None:
        poll(procs, outputs)
      finished = 0
      for name, proc in procs.items():
        returncode = proc.poll()
        if returncode is None:
          continue
        if name.startswith("ps"):
          failure = {
            "task": name,
            "returncode": returncode,
            "reason": "the parameter server stopped",
          }
        elif returncode != 0:
          failure = {
            "task": name,
            "returncode": returncode,
            "reason": "the worker failed",
          }
        elif _read_result(result_files[name]) is None:
          failure = {
            "task": name,
            "returncode": returncode,
            "reason": "the worker exited without a result",
          }
        else:
          finished += 1
          continue
        break
      if failure is not None or finished == num_workers:
        break
      if time.time() > deadline:
        timed_out = True
        running = [
          n
          for n, p in procs.items()
          if n.startswith("worker") and p.poll() is None
        ]
        failure = {
          "task": running[0] if running else None,
          "returncode": None,
          "reason": "timed out after %g s" % timeout,
        }
        break
      time.sleep(0.1)
  finally:
    _terminate(list(procs.values()))
    for reader in readers:
      reader.join(2.0)
  results = {name: _read_result(path) for name, path in result_files.items()}
  message = None
  if failure is not None:
    task = failure["task"]
    failure["last_lines"] = list(outputs.get(task, [])[-_TAIL_LINES:])
    if task is not None:
      failure["role"] = (
        "ps"
        if task.startswith("ps")
        else convnet.task_role(int(task.split(":")[1]), num_workers)
      )
    message = "convnet_distributed: %s%s: %s, %s; stopped the cluster." % (
      task,
      " (%s)" % failure["role"] if task else "",
      failure["reason"],
      describe_exit(failure["returncode"]),
    )
    if failure["last_lines"]:
      message += " Its last lines:\n" + "\n".join(
        "  [%s] %s" % (task, line) for line in failure["last_lines"]
      )
    if verbose:
      with print_lock:
        print(message, flush=True)
  ok = failure is None and all(r is not None for r in results.values())
  for directory in made_dirs:
    if directory == checkpoint_dir and ok:
      continue
    shutil.rmtree(directory, ignore_errors=True)
    if directory == checkpoint_dir:
      checkpoint_dir = None
  return {
    "ok": ok,
    "results": results,
    "failure": failure,
    "message": message,
    "returncodes": {n: p.returncode for n, p in procs.items()},
    "outputs": outputs,
    "checkpoint_dir": checkpoint_dir,
    "seconds": time.time() - start,
    "timed_out": timed_out,
  }


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
  import tensorflow as tf

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
    if (
      value.ndim == 2
      and value.shape[0] == value.shape[1]
      and "diag" not in (name)
    ):
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
  import tensorflow as tf
  from kfac import layer_collection as lc
  from kfac.examples import mnist

  if not mnist.has_test_split(data_dir, use_fake_data):
    return None
  images, labels = mnist.load_arrays(
    data_dir, flatten_images=False, split="test"
  )
  with tf.Graph().as_default():
    examples = tf.compat.v1.placeholder(tf.float32, (None,) + images.shape[1:])
    targets = tf.compat.v1.placeholder(tf.int64, [None])
    loss, accuracy = convnet.build_model(
      examples, targets, 10, lc.LayerCollection()
    )
    saver = tf.compat.v1.train.Saver(tf.compat.v1.trainable_variables())
    with tf.compat.v1.Session() as sess:
      saver.restore(sess, tf.train.latest_checkpoint(checkpoint_dir))
      loss_, accuracy_ = sess.run(
        [loss, accuracy], {examples: images, targets: labels}
      )
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
        os._exit(124)
      if os.getppid() != parent:
        os._exit(125)

  thread = threading.Thread(target=_watch, daemon=True)
  thread.start()


def _quiet_shutdown_of_queue_runners():
  """Drops the `CancelledError` tracebacks of queue-runner threads.

  When the chief's session closes, `SyncReplicasOptimizer`'s queue runner
  is cancelled in the middle of its `TakeGrad` and its thread ends with a
  `CancelledError`, which Python would print; that is the normal end of
  training, so it is not printed. Other thread exceptions are.
  """
  import tensorflow as tf

  default_hook = threading.excepthook

  def hook(args):
    if not issubclass(args.exc_type, tf.errors.CancelledError):
      default_hook(args)

  threading.excepthook = hook


def _finite_or_none(value):
  return value if value is not None and math.isfinite(value) else None


def run_task(
  job_name,
  task_index,
  cluster,
  settings,
  checkpoint_dir=None,
  timeout=300.0,
  data_dir="",
  use_fake_data=False,
  result_file=None,
):
  """Runs one task of the cluster in this process.

  A parameter server serves until it is killed; a worker trains with
  `convnet.train_mnist_distributed_result`, writes its result as JSON to
  `result_file` and returns it.

  Args:
    job_name: str. "ps" or "worker".
    task_index: int. Index of the task in its job.
    cluster: dict. `{"ps": [host:port, ...], "worker": [host:port, ...]}`.
    settings: `common.Settings`. Training settings.
    checkpoint_dir: str or None. The chief's checkpoint directory.
    timeout: float. Seconds after which the process exits by itself.
    data_dir: str. As in `mnist.load_arrays`.
    use_fake_data: bool. As in `mnist.load_arrays`.
    result_file: str or None. Where a worker writes its result: a JSON
      object with `task`, `role`, `local_steps`, `global_step`, `loss`,
      `accuracy` (null where not finite or not computed) and `seconds`.

  Returns:
    For a worker, the result dict written to `result_file`.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  _watchdog(timeout)
  _quiet_shutdown_of_queue_runners()
  num_ps = len(cluster["ps"])
  num_workers = len(cluster["worker"])
  if job_name == "ps":
    device_filters = ["/job:ps"]
  else:
    device_filters = ["/job:ps", "/job:worker/task:%d" % task_index]
  config = tf.compat.v1.ConfigProto(
    intra_op_parallelism_threads=1,
    inter_op_parallelism_threads=2,
    device_filters=device_filters,
  )
  server = tf.compat.v1.train.Server(
    tf.train.ClusterSpec(cluster),
    job_name=job_name,
    task_index=task_index,
    config=config,
  )
  if job_name == "ps":
    print(
      "ps %d serving at %s" % (task_index, cluster["ps"][task_index]),
      flush=True,
    )
    server.join()
    return None
  print(
    "worker %d (%s) at %s, %d ps, %d workers"
    % (
      task_index,
      convnet.task_role(task_index, num_workers),
      cluster["worker"][task_index],
      num_ps,
      num_workers,
    ),
    flush=True,
  )
  with tf.Graph().as_default():
    result = convnet.train_mnist_distributed_result(
      task_index,
      num_workers,
      num_ps,
      server.target,
      data_dir,
      None,
      use_fake_data,
      settings=settings,
      checkpoint_dir=checkpoint_dir,
      session_config=config,
      wait_for_workers_secs=min(120.0, timeout),
    )
  record = {
    "task": "worker:%d" % task_index,
    "role": result["role"],
    "local_steps": result["steps"],
    "global_step": result["global_step"],
    "loss": _finite_or_none(result["loss"]),
    "accuracy": _finite_or_none(result["accuracy"]),
    "seconds": result["seconds"],
  }
  if result_file:
    tmp = result_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
      json.dump(record, f)
    os.replace(tmp, result_file)
  return record


def main(argv, flag_values=flags.FLAGS):
  """Launches a local cluster, or runs one of its tasks (`--job_name`).

  Args:
    argv: list of str. Positional command-line arguments (unused).
    flag_values: the parsed `flags.FlagValues`.
  """
  del argv
  fv = flag_values
  common.quiet_logs()
  settings = common.settings_from_flags(DEFAULTS, flag_values=fv)
  if fv.job_name:
    run_task(
      fv.job_name,
      fv.task_index,
      json.loads(fv.cluster),
      settings,
      checkpoint_dir=fv.checkpoint_dir or None,
      timeout=fv.timeout,
      data_dir=fv.data_dir,
      use_fake_data=fv.use_fake_data,
      result_file=fv.result_file or None,
    )
    sys.stdout.flush()
    os._exit(0)
  task_args = [
    "--%s=%s" % (name, fv[name].value)
    for name in _FORWARDED
    if fv[name].present
  ]
  print(
    "convnet_distributed: starting %d ps + %d workers on 127.0.0.1"
    % (fv.ps, fv.workers),
    flush=True,
  )
  result = launch(
    fv.ps,
    fv.workers,
    timeout=fv.timeout,
    checkpoint_dir=fv.checkpoint_dir or None,
    task_args=task_args,
  )
  if not result["ok"]:
    print(
      "convnet_distributed: %s, %d ps + %d workers in %.1f s"
      % (
        "TIMED OUT" if result["timed_out"] else "FAILED",
        fv.ps,
        fv.workers,
        result["seconds"],
      ),
      flush=True,
    )
    sys.exit(1)
  chief = result["results"]["worker:0"]
  changes = factor_changes(result["checkpoint_dir"])
  moved = "%d/%d covariances and %d/%d inverses changed" % (
    sum(v > 0 for v in changes["cov"].values()),
    len(changes["cov"]),
    sum(v > 0 for v in changes["inv"].values()),
    len(changes["inv"]),
  )
  held_out = evaluate_checkpoint(
    result["checkpoint_dir"], fv.data_dir, fv.use_fake_data
  )
  held_out = (
    "held-out test set: loss %.4f, accuracy %.3f; " % held_out
    if held_out
    else ""
  )
  print(
    "convnet_distributed: ok, %d ps + %d workers in %.1f s; global step "
    "%d, chief: %d local steps, last loss %.4f, accuracy %.3f; %s; %s"
    "checkpoint in %s"
    % (
      fv.ps,
      fv.workers,
      result["seconds"],
      chief["global_step"],
      chief["local_steps"],
      chief["loss"],
      chief["accuracy"],
      moved,
      held_out,
      result["checkpoint_dir"],
    ),
    flush=True,
  )


if __name__ == "__main__":
  define_flags()
  flags.adopt_module_key_flags(common)
  app.run(main)
