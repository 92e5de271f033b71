"""Installing r1track's plugin files into upstream checkouts (LLaMA-Factory, EasyR1, PyTracking), safely.

The contract is :mod:`r1track.install`'s docstring (every public name is importable from there). Modules, lowest
first: :mod:`~r1track.installer.safefiles` (manifests, hashes, backups, atomic writes, paths that cannot escape
the target), :mod:`~r1track.installer.sources` (where the plugin files are),
:mod:`~r1track.installer.plan` (working out every action, touching nothing), one installer per framework
(:mod:`~r1track.installer.llamafactory`, :mod:`~r1track.installer.easyr1`, :mod:`~r1track.installer.pytracking`)
and their registry :mod:`~r1track.installer.targets`, and :mod:`~r1track.installer.apply` (carrying a plan out).
Standard library only, so ``install_plugins.py`` runs before r1track's dependencies are installed.
"""
