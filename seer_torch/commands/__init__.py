"""The bodies of the ``seer`` commands, one module each; :mod:`seer_torch.cli` parses the
command line and calls them.

| module            | command                                                   |
|-------------------|-----------------------------------------------------------|
| ``plan``          | ``seer plan``: SEER's first plan, printed; launches nothing |
| ``tune``          | ``seer tune`` and ``seer resume``                          |
| ``profile``       | ``seer profile``: a scaling profile through the real worker |
| ``simulate``      | ``seer simulate``: policies on the simulated backend       |
| ``bench_record``  | ``seer bench record``: a learning-curve table              |
| ``checks``        | what every launching command checks before it launches    |
| ``status``        | the live status of ``seer tune`` and the final summary    |
| ``common``        | shared helpers: argument checks, the backend, tables      |

Every module here imports torch, the executor and the backends inside its functions only, so
that ``seer plan`` (and ``seer --help``) start in a fraction of a second.
"""
