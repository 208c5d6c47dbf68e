"""``provider-registry add-provider``: scaffold a new provider, its tests and its config entry.

The seed's ``scripts/add_provider.py``, as a subcommand. It writes

* ``<package-dir>/<snake_name>.py``: a class implementing the type's interface
  (`providers.interfaces`), every method with a working placeholder and a
  ``# TODO:`` saying what a real implementation must do;
* ``<tests-dir>/test_<snake_name>.py``: tests calling every interface method,
  which pass as generated and fail once any placeholder is missing;
* an entry in the right section of providers.yaml, appended as text so the
  file's comments and layout survive, then checked with the registry's own
  loader (the original is restored if it no longer loads).

Everything is validated before anything is written. Errors an operator can
fix by changing a flag exit with 2 and name the flag. No Ray import here:
this runs on a laptop with no cluster.

One job a module::

    cli          the flags, and the run from flags (or prompts) to files
    prompts      the questions asked on a terminal
    checks       checks of single values (a name, a type, KEY=DEFAULT)
    planning     every file and edit computed first, then written, then imported
    render       the generated module and tests, from the templates and the interface
    signatures   interface method signatures, from ``inspect.signature``
    imports      import lines merged and grouped as isort does
    template_files  reading ``templates/*.py-tpl`` (package data) and filling tokens
    catalog      per type: the class-name suffix, the config keys placeholders read
    config_file  providers.yaml: read, plan the edit, write it back checked
    yaml_text    the entry appended as text
    model        Request, Plan, ScaffoldError
"""

from __future__ import annotations

from serve_app.scaffold.cli import add_arguments, run
from serve_app.scaffold.config_file import read_exact, write_exact
from serve_app.scaffold.model import EXIT_FAILED, EXIT_USAGE, Plan, Request, ScaffoldError
from serve_app.scaffold.planning import generate, plan, verify_loadable, write
from serve_app.scaffold.yaml_text import append_entry, entry_lines, entry_spec

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "Plan", "Request", "ScaffoldError", "add_arguments", "append_entry",
           "entry_lines", "entry_spec", "generate", "plan", "read_exact", "run", "verify_loadable", "write",
           "write_exact"]
