"""The browser viewer (``deeplesion view``): a small read-only web app over a release.

- :mod:`~deeplesion.view.service`: what is served (rows, series, windowed slices, HU, predictions with
  their FROC status, patients with tracks), checked names, errors with HTTP statuses; no web framework;
- :mod:`~deeplesion.view.app`: the Starlette routes of the JSON API (``docs/viewer.md``) and the page;
- ``static/``: the page (HTML, CSS, plain JavaScript; no build step, nothing loaded from outside).

Needs the ``view`` extra (starlette, uvicorn).
"""
