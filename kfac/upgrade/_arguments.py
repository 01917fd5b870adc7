"""Argument-list editing that keeps a call's layout."""

from kfac.upgrade._cst import cst


def _default_comma():
  return cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))


def _kwarg(name, value_code):
  return cst.Arg(
    keyword=cst.Name(name),
    value=cst.parse_expression(value_code),
    equal=cst.AssignEqual(
      whitespace_before=cst.SimpleWhitespace(""),
      whitespace_after=cst.SimpleWhitespace(""),
    ),
  )


def _without_comment(comma):
  """`comma` with the comment / blank lines after it removed."""
  ws = comma.whitespace_after
  if isinstance(ws, cst.ParenthesizedWhitespace):
    ws = ws.with_changes(
      first_line=cst.TrailingWhitespace(newline=ws.first_line.newline),
      empty_lines=[],
    )
    return comma.with_changes(whitespace_after=ws)
  return comma


def _append_kwargs(args, new):
  """Appends keyword arguments `new` [(name, code)] to the list `args`.

  The layout of the call is kept: on a multi-line call the new arguments go
  on lines of their own, with the indentation of the existing ones, and the
  comments stay on the lines they were on.
  """
  if not new:
    return args
  args = list(args)
  new_args = [_kwarg(name, code) for name, code in new]
  if not args:
    return new_args
  last = args[-1]
  if len(args) >= 2 and isinstance(args[-2].comma, cst.Comma):
    sep = _without_comment(args[-2].comma)
  else:
    sep = _default_comma()
  if isinstance(last.comma, cst.Comma):
    closing = last.comma
    last_comma = sep
    if isinstance(closing.whitespace_after, cst.ParenthesizedWhitespace) and (
      isinstance(sep.whitespace_after, cst.ParenthesizedWhitespace)
    ):
      # Keep a comment after the old last argument on its line.
      last_comma = closing.with_changes(
        whitespace_after=closing.whitespace_after.with_changes(
          last_line=sep.whitespace_after.last_line
        )
      )
    closing = _without_comment(closing)
  else:
    closing = cst.MaybeSentinel.DEFAULT
    last_comma = sep
  args[-1] = last.with_changes(comma=last_comma)
  for i, arg in enumerate(new_args):
    new_args[i] = arg.with_changes(
      comma=closing if i == len(new_args) - 1 else sep
    )
  return args + new_args


def _remove_kwargs(args, names):
  """Removes keyword arguments named in `names` from the list `args`."""
  args = list(args)
  out = []
  for i, arg in enumerate(args):
    if arg.keyword is not None and arg.keyword.value in names:
      if i == len(args) - 1 and out:
        out[-1] = out[-1].with_changes(comma=arg.comma)
      continue
    out.append(arg)
  return out
