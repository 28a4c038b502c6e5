"""Sphinx extension for the library reference (book/api), registered in _config.yml.

autodoc, autosummary and napoleon do most of the work; this module mends three places where
they meet gridlib's code:

1. **JAX-wrapped functions.** A function under ``jax.custom_jvp`` / ``jax.custom_vjp`` (such as
   :func:`gridlib.ep.model.rho_clip`) is an object, not a function, so ``automodule :members:``
   would skip it silently. :class:`JaxFunctionDocumenter` documents it as the function it wraps
   (its signature and docstring are the wrapped function's).
2. **Attribute docstrings.** napoleon reads the first line of a constant's ``#:`` comment as
   ``type: description``, so ``#: The sequence lengths of the study: ...`` became a type named
   "The sequence lengths of the study". The library's comments are prose: napoleon parses them
   like any other docstring.
3. **Names as their module sees them.** A docstring names what its module imports (``Task``
   in :mod:`gridlib.baselines`) or a package's re-export (``gridlib.ep.ep_gradient``). Such a
   reference is resolved, by identity, to the one documented object it is; a name the module
   does not see, or one that is not documented, is still a broken reference (and fails ``-n``).
4. **Unqualified annotations.** With ``from __future__ import annotations`` a NamedTuple's
   fields keep their annotations as strings (``GridParams``) that autodoc cannot resolve, and a
   bare name is ambiguous across packages. Each bare class name in a signature is qualified by
   the module the object is defined in, so it links to the class it means. A ``TypeVar`` in a
   signature is shown as text: it names no object to link to.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import typing
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.ext.autodoc import FunctionDocumenter, ModuleDocumenter
from sphinx.transforms.post_transforms import SphinxPostTransform


def _wrapped_function(member: Any) -> Any | None:
    """The plain function a JAX transformation object wraps, or None."""
    if inspect.isroutine(member) or isinstance(member, type) or not callable(member):
        return None
    wrapped = getattr(member, "__wrapped__", None)
    return wrapped if inspect.isfunction(wrapped) else None


class JaxFunctionDocumenter(FunctionDocumenter):
    """``automodule :members:`` documents ``jax.custom_jvp`` / ``custom_vjp`` objects as functions."""

    objtype = "jaxfunction"
    directivetype = "function"
    priority = FunctionDocumenter.priority + 1

    @classmethod
    def can_document_member(cls, member: Any, membername: str, isattr: bool, parent: Any) -> bool:
        return isinstance(parent, ModuleDocumenter) and _wrapped_function(member) is not None

    def format_args(self, **kwargs: Any) -> str:
        real = self.object
        self.object = _wrapped_function(real) or real
        try:
            return super().format_args(**kwargs)
        finally:
            self.object = real


def _napoleon_as_prose(app: Sphinx) -> None:
    """napoleon, except that a constant's docstring is parsed like any other docstring."""
    from sphinx.ext import napoleon

    listeners = app.events.listeners.get("autodoc-process-docstring", [])
    for listener in list(listeners):
        if listener.handler is napoleon._process_docstring:
            app.disconnect(listener.id)

    def process(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
        napoleon._process_docstring(app, "module" if what in ("data", "attribute") else what,
                                    name, obj, options, lines)

    app.connect("autodoc-process-docstring", process)


_NAME = re.compile(r"(?<![\w.~])([A-Za-z_]\w*)(?![\w.])(?!\s*:)(?!=)")


def _qualify(text: str | None, namespace: dict[str, Any]) -> str | None:
    """``text`` with each bare class name of ``namespace`` written ``~module.Name``."""
    if not text:
        return text

    def repl(m: re.Match) -> str:
        value = namespace.get(m.group(1))
        if isinstance(value, type) and value.__module__ not in ("builtins", "typing"):
            return f"~{value.__module__}.{value.__qualname__}"
        return m.group(0)

    return _NAME.sub(repl, text)


def _qualify_signature(app: Sphinx, what: str, name: str, obj: Any, options: Any,
                       signature: str | None, return_annotation: str | None):
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    if module is None or not (signature or return_annotation):
        return None
    namespace = vars(module)
    return _qualify(signature, namespace), _qualify(return_annotation, namespace)


def _lookup(target: str, module: str | None) -> tuple[bool, Any]:
    """``(found, object)``: ``target`` as Python sees it from ``module`` (or as a dotted path)."""
    parts = target.split(".")
    starts = []
    if module and module in sys.modules:
        starts.append((sys.modules[module], parts))
    for i in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:i])
        if name.startswith("gridlib"):
            try:
                starts.append((importlib.import_module(name), parts[i:]))
            except ImportError:
                continue
            break
    for obj, rest in starts:
        try:
            for attr in rest:
                obj = getattr(obj, attr)
        except AttributeError:
            continue
        return True, obj
    return False, None


def _documented_as(env: Any, target: str, module: str | None) -> str | None:
    """The one documented full name of the gridlib object ``target`` names from ``module``."""
    found, obj = _lookup(target, module)
    if not found or isinstance(obj, typing.TypeVar):
        return None
    last = target.rpartition(".")[2]
    cache = env.app.__dict__.setdefault("_gridlib_names", {})
    if last not in cache:
        cache[last] = [name for name, entry in env.get_domain("py").objects.items()
                       if name.rpartition(".")[2] == last and not entry.aliased]
    matches = []
    for fullname in cache[last]:
        ok, candidate = _lookup(fullname, None)
        if ok and (candidate is obj or (inspect.ismodule(obj) and fullname == obj.__name__)):
            matches.append(fullname)
    return matches[0] if len(matches) == 1 else None


class QualifyImportedNames(SphinxPostTransform):
    """A Python reference that names a gridlib object the way the docstring's module sees it.

    ``Task`` in :mod:`gridlib.baselines` (which imports it) or the re-export
    ``gridlib.ep.ep_gradient`` is the object documented as ``gridlib.experiment.Task`` or
    ``gridlib.ep.equilibrium.ep_gradient``: the reference is pointed at that documented object,
    found by identity, before references are resolved. A type alias, documented as data, is
    found by an annotation's class reference. A name the module does not see, or an
    object that is not documented, is left as it was (a broken reference stays broken).
    """

    default_priority = 5  # before sphinx.transforms.post_transforms.ReferencesResolver (10)

    def run(self, **kwargs: Any) -> None:
        py = self.env.get_domain("py")
        for node in self.document.findall(addnodes.pending_xref):
            if node.get("refdomain") != "py":
                continue
            target = node.get("reftarget", "")
            module = node.get("py:module")
            if not (target.startswith("gridlib") or (module or "").startswith("gridlib")):
                continue
            fullname = next((n for n in (target, f"{module}.{target}") if n in py.objects), None)
            if fullname is None:
                fullname = _documented_as(self.env, target, module)
                if fullname is None:
                    continue
                node["reftarget"] = fullname
            # a type alias (``Record = Mapping[str, Any]``) is documented as data, yet an
            # annotation refers to it as a class
            if node.get("reftype") == "class" and py.objects[fullname].objtype == "data":
                node["reftype"] = "obj"


def _typevar_as_text(app: Sphinx, env: Any, node: Any, contnode: nodes.Element) -> nodes.Element | None:
    """A ``TypeVar`` named in a signature (``gridlib.scale.T``) is shown as text: no object."""
    if node.get("refdomain") != "py":
        return None
    found, obj = _lookup(node.get("reftarget", ""), node.get("py:module"))
    return contnode if found and isinstance(obj, typing.TypeVar) else None


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.autodoc")
    app.setup_extension("sphinx.ext.napoleon")
    app.add_autodocumenter(JaxFunctionDocumenter)
    app.connect("builder-inited", _napoleon_as_prose)
    app.connect("autodoc-process-signature", _qualify_signature)
    app.add_post_transform(QualifyImportedNames)
    app.connect("missing-reference", _typevar_as_text)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
