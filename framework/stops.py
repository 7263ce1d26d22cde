"""Why training stopped: the reasons the core itself gives (``Trainer.stop_reason`` starts with
one of these). A callback that ends a run gives a reason of its own, in words."""
from __future__ import annotations

#: After Ctrl-C or SIGTERM; callbacks' on_train_end still run (the checkpoint is saved).
INTERRUPTED = "interrupted"
#: The loss stopped being a finite number.
DIVERGED = "training diverged"
#: ``--time-limit`` ran out.
TIME_LIMIT = "time limit"
#: A callback raised (see :class:`charrnn.errors.CallbackFailed`).
CALLBACK_FAILED = "callback failed"
