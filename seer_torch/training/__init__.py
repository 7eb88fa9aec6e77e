"""The built-in worker's parts (:mod:`seer_torch.worker` is its entry point and epoch loop),
on the trial API (:mod:`seer_torch.trial`), which owns the process group, the batch plan and
data order, the checkpoint file, ``metrics.jsonl``, the heartbeat and TensorBoard.

| module        | what it holds                                                             |
|---------------|---------------------------------------------------------------------------|
| ``config``    | ``config.json`` as ``TrialConfig``; imports no torch                      |
| ``schedule``  | the learning-rate schedule over optimizer steps (``LrSchedule``)          |
| ``trainer``   | ``Trainer``: model, optimizer, one step, evaluation, the checkpoint state |
| ``probe``     | the profile probe (``--profile-steps``)                                   |

The worker layer: these import nothing from seer_torch except :mod:`seer_torch.errors`,
:mod:`seer_torch.data`, :mod:`seer_torch.models`, :mod:`seer_torch.runfiles` and the trial API.
"""
