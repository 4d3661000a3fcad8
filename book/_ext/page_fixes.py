"""Sphinx extension: small fixes to the HTML pages, found by the browser check.

- Jupyter Book's stack registers the inline scripts of sphinx-thebe and
  sphinx-togglebutton twice (once with file name ``None``, once with ``""``), so each
  page declares ``const THEBE_JS_URL`` twice, a JavaScript error. Scripts with the same
  file and attributes are de-duplicated here, keeping the first copy.
"""

from __future__ import annotations


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        attrs = {k: v for k, v in getattr(js, "attributes", {}).items() if k != "priority"}
        key = (getattr(js, "filename", str(js)) or "", repr(sorted(attrs.items())))  # None == ""
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=999)  # after every other extension
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
