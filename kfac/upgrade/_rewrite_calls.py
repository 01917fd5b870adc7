"""Rewriting and checking of calls (a mixin of `_Upgrader`)."""

import collections

from kfac.upgrade._cst import cst
from kfac.upgrade._tables import ESTIMATOR_PARAMS_14
from kfac.upgrade._tables import METHOD_RENAMES_02
from kfac.upgrade._tables import OPTIMIZER_KEYWORD_ONLY
from kfac.upgrade._tables import OPTIMIZER_PARAMS_02
from kfac.upgrade._tables import OPTIMIZER_PARAMS_14
from kfac.upgrade._tables import REGISTER_PARAMS_14
from kfac.upgrade._tables import _APPROX_NAMES_14
from kfac.upgrade._tables import _CMVP_PATH
from kfac.upgrade._paths import (
  _is_02_path,
  _is_kfac,
  _is_none,
  _map_path,
  _string_value,
)
from kfac.upgrade._arguments import _append_kwargs, _remove_kwargs


class _CallRewrites(object):
  """KfacOptimizer, CMVP, FisherEstimator and register_* calls."""

  def leave_Call(self, original, updated):
    if self._import_depth:
      return updated
    path = self._qname(original.func)
    if path is not None:
      new = _map_path(path) or path
      if new == "kfac.optimizer.KfacOptimizer":
        return self._upgrade_optimizer_call(
          original,
          updated,
          from_02=_is_02_path(path),
          path_is_kfac=_is_kfac(path),
        )
      if new == _CMVP_PATH and (self._is_02 or _is_02_path(path)):
        return self._upgrade_cmvp_call(original, updated)
      if new == "kfac.estimator.FisherEstimator" and (
        self._is_02 or _is_02_path(path)
      ):
        self._check_estimator_call(original)
        return updated
    if self._is_02 and isinstance(updated.func, cst.Attribute):
      method = original.func.attr.value
      if method in METHOD_RENAMES_02 and method.startswith("register_"):
        return self._upgrade_register_call(original, updated, method)
      if method in REGISTER_PARAMS_14:
        return self._upgrade_register_call(original, updated, method)
    return updated

  def _upgrade_optimizer_call(
    self, original, updated, from_02, path_is_kfac=True
  ):
    args = list(updated.args)
    if any(a.star for a in args):
      if self._is_02 or from_02:
        self._attend(
          original,
          "KfacOptimizer called with *args/**kwargs: "
          "check the arguments against the 1.4 signature %s"
          % (OPTIMIZER_PARAMS_14,),
        )
      return updated
    positional = [a for a in args if a.keyword is None]
    keywords = collections.OrderedDict(
      (a.keyword.value, a) for a in args if a.keyword is not None
    )
    bound14 = set(OPTIMIZER_PARAMS_14[: len(positional)])
    valid14 = (
      len(positional) <= len(OPTIMIZER_PARAMS_14)
      and set(keywords) <= set(OPTIMIZER_PARAMS_14 + OPTIMIZER_KEYWORD_ONLY)
      and not bound14 & set(keywords)
      and set(OPTIMIZER_PARAMS_14[:4]) <= bound14 | set(keywords)
    )
    bound02 = set(OPTIMIZER_PARAMS_02[: len(positional)])
    valid02 = (
      set(keywords) <= set(OPTIMIZER_PARAMS_02)
      and not bound02 & set(keywords)
      and set(OPTIMIZER_PARAMS_02[:3]) <= bound02 | set(keywords)
    )
    as_02 = from_02 or self._is_02 or (not valid14 and valid02 and path_is_kfac)
    if not as_02:
      if not valid14:
        self._attend(
          original,
          "KfacOptimizer call does not match the 1.4 "
          "signature %s" % (OPTIMIZER_PARAMS_14,),
        )
      return updated
    if len(positional) >= 2:
      self._attend(
        original,
        "KfacOptimizer called positionally in the kfac "
        "0.2.x order (learning_rate, damping, layer_collection, "
        "cov_ema_decay, ...); the 1.4 order is (learning_rate, "
        "cov_ema_decay, damping, layer_collection, ...): pass the "
        "arguments by keyword and run kfac-upgrade again",
      )
      return updated
    if not valid02:
      self._attend(
        original,
        "KfacOptimizer call matches neither the 1.4 nor "
        "the kfac 0.2.x signature",
      )
      return updated
    added = []
    removed = []
    momentum_type = "adam"
    if "momentum_type" in keywords:
      momentum_type = _string_value(keywords["momentum_type"].value)
      if momentum_type is not None:
        momentum_type = momentum_type.lower()
    for name in keywords:
      if name in OPTIMIZER_PARAMS_14 or name in OPTIMIZER_KEYWORD_ONLY:
        continue
      self._attend(
        original,
        "KfacOptimizer(%s=...) is a kfac 0.2.x argument "
        "with no counterpart in kfac; left in place, remove or "
        "replace it by hand" % name,
      )
    if momentum_type is None:
      self._attend(
        original,
        "KfacOptimizer(momentum_type=...) is not a string "
        "literal: the 1.4 optimizer accepts 'regular', 'adam' and "
        "'qmodel' (with momentum=0) only",
      )
    elif momentum_type not in ("regular", "adam", "qmodel"):
      self._attend(
        original,
        "KfacOptimizer(momentum_type=%r) does not exist "
        "in the 1.4 API ('regular', 'adam', 'qmodel')" % momentum_type,
      )
    if momentum_type == "qmodel" and "momentum" in keywords:
      if _is_none(keywords["momentum"].value):
        removed.append("momentum")
    if (
      "norm_constraint" in keywords
      and not _is_none(keywords["norm_constraint"].value)
      and momentum_type != "regular"
    ):
      self._attend(
        original,
        "KfacOptimizer: the 1.4 optimizer accepts "
        "norm_constraint only with momentum_type='regular'",
      )
    if "cov_ema_decay" not in keywords:
      added.append(("cov_ema_decay", "0.95"))
    if "momentum" not in keywords and momentum_type != "qmodel":
      added.append(("momentum", "0.9"))
    if "momentum_type" not in keywords:
      added.append(("momentum_type", '"adam"'))
    if "colocate_gradients_with_ops" not in keywords:
      added.append(("colocate_gradients_with_ops", "True"))
    if not added and not removed and not from_02:
      return updated
    new_args = _remove_kwargs(args, set(removed))
    new_args = _append_kwargs(new_args, added)
    result = updated.with_changes(args=new_args)
    if added or removed:
      what = []
      if added:
        what.append(
          "added the kfac 0.2.x defaults %s"
          % ", ".join("%s=%s" % kv for kv in added)
        )
      if removed:
        what.append(
          "removed %s (the kfac equivalent)"
          % ", ".join(
            "%s=%s" % (n, self._code(keywords[n].value)) for n in removed
          )
        )
      self._change(
        original,
        "KfacOptimizer (kfac 0.2.x keywords): " + "; ".join(what),
        kind="call",
      )
    return result

  def _upgrade_cmvp_call(self, original, updated):
    """kfac 0.2.x CurvatureMatrixVectorProductComputer(layer_collection, ...).

    The 1.4 constructor takes `losses`: the first argument `lc` becomes
    `lc.losses` (and the keyword `layer_collection=` becomes `losses=`).
    """
    args = list(updated.args)
    if any(a.star for a in args):
      self._attend(
        original,
        "CurvatureMatrixVectorProductComputer called with "
        "*args/**kwargs: the 1.4 signature is (losses, wrt_tensors)",
      )
      return updated
    for arg in args:
      keyword = arg.keyword.value if arg.keyword is not None else None
      if keyword not in (None, "layer_collection", "losses", "wrt_tensors"):
        self._attend(
          original,
          "CurvatureMatrixVectorProductComputer(%s=...) "
          "has no 1.4 counterpart; left in place" % keyword,
        )
    first = None
    for i, arg in enumerate(args):
      if (i == 0 and arg.keyword is None) or (
        arg.keyword is not None and arg.keyword.value == "layer_collection"
      ):
        first = i
        break
    if first is None:
      return updated
    value = args[first].value
    if isinstance(value, cst.Attribute) and value.attr.value == "losses":
      return updated
    if not isinstance(
      value, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)
    ):
      value = value.with_changes(
        lpar=[cst.LeftParen()], rpar=[cst.RightParen()]
      )
    new_arg = args[first].with_changes(
      value=cst.Attribute(value=value, attr=cst.Name("losses"))
    )
    if new_arg.keyword is not None:
      new_arg = new_arg.with_changes(keyword=cst.Name("losses"))
    args[first] = new_arg
    self._change(
      original,
      "CurvatureMatrixVectorProductComputer: kfac 0.2.x "
      "`layer_collection` argument -> `%s` (the 1.4 `losses`)"
      % " ".join(self._module.code_for_node(new_arg.value).split()),
      kind="args",
    )
    return updated.with_changes(args=args)

  def _check_estimator_call(self, original):
    """Reports kfac 0.2.x FisherEstimator arguments without 1.4 counterpart."""
    args = list(original.args)
    positional = [a for a in args if a.keyword is None and not a.star]
    if len(positional) > 4:
      self._attend(
        original,
        "FisherEstimator called with %d positional "
        "arguments: the fifth is `exps` in kfac 0.2.x and "
        "`estimation_mode` in 1.4; pass it by keyword" % len(positional),
      )
    for arg in args:
      if arg.keyword is not None and (
        arg.keyword.value not in ESTIMATOR_PARAMS_14
      ):
        self._attend(
          original,
          "FisherEstimator(%s=...) is a kfac 0.2.x "
          "argument with no 1.4 counterpart; left in place" % arg.keyword.value,
        )

  def _upgrade_register_call(self, original, updated, method):
    """kfac 0.2.x LayerCollection.register_* calls (0.2.x files only)."""
    new_method = METHOD_RENAMES_02.get(method, method)
    params = REGISTER_PARAMS_14[new_method]
    args = list(updated.args)
    if any(a.star for a in args):
      return updated
    positional = [a for a in args if a.keyword is None]
    if len(positional) > len(params) or (
      new_method == "register_conv2d" and len(positional) > 5
    ):
      self._attend(
        original,
        "%s called with %d positional arguments; the "
        "1.4 signature is %s(%s) and the kfac 0.2.x order differs "
        "after that: pass the extra arguments by keyword"
        % (new_method, len(positional), new_method, ", ".join(params)),
      )
      return updated
    result = updated
    if method != new_method:
      if method == "register_squared_error_loss" and len(positional) > 1:
        self._attend(
          original,
          "register_squared_error_loss(prediction, seed, "
          "targets, ...) called positionally: the 1.4 "
          "register_normal_predictive_distribution is (mean, "
          "var=0.5, seed, targets, name); pass seed/targets by "
          "keyword and run kfac-upgrade again",
        )
        return updated
      new_args = []
      for a in args:
        if a.keyword is not None and a.keyword.value == "prediction":
          a = a.with_changes(keyword=cst.Name("mean"))
        new_args.append(a)
      result = result.with_changes(
        func=updated.func.with_changes(
          attr=updated.func.attr.with_changes(value=new_method)
        ),
        args=new_args,
      )
      self._change(
        original,
        "`.%s(` -> `.%s(` (kfac 0.2.x alias)" % (method, new_method),
        kind="method",
      )
    removed = []
    for a in args:
      if a.keyword is None:
        continue
      name = a.keyword.value
      if name == "approx":
        if _is_none(a.value):
          removed.append(name)
        else:
          value = _string_value(a.value)
          if value is not None and value not in _APPROX_NAMES_14:
            self._attend(
              original,
              "approx=%r does not exist in the 1.4 API "
              "(%s)" % (value, ", ".join(_APPROX_NAMES_14)),
            )
      elif name == "coeff" and self._code(a.value) in (
        "1.0",
        "1",
        "1.",
        "1.0e0",
      ):
        removed.append(name)
      elif name not in params and name != "prediction":
        self._attend(
          original,
          "%s(%s=...) is a kfac 0.2.x argument with no "
          "1.4 counterpart; left in place" % (new_method, name),
        )
    if removed:
      result = result.with_changes(
        args=_remove_kwargs(result.args, set(removed))
      )
      self._change(
        original,
        "%s: removed %s (the 1.4 default)" % (new_method, ", ".join(removed)),
        kind="args",
      )
    return result
