"""policy_node with a deliberately slow policy, for test_policy_node: run as a script, like the executable.

An MLP policy whose predict_action is fast for $SLOW_POLICY_FAST_PREDICTIONS calls, then takes
$SLOW_POLICY_SECONDS each (a policy that stalls mid-run). Its artifact names it 'slow_mlp', which
is registered here before the real policy_node main() loads it.
"""

import os
import time

from dynamo_policy.policies import POLICIES
from dynamo_policy.policies.mlp.modeling_mlp import MLPPolicy
from dynamo_policy.policy_node import main


class SlowMLPPolicy(MLPPolicy):
    name = 'slow_mlp'

    def __init__(self, config, metadata):
        super().__init__(config, metadata)
        self.calls = 0
        self.fast_predictions = int(os.environ['SLOW_POLICY_FAST_PREDICTIONS'])
        self.slow_seconds = float(os.environ['SLOW_POLICY_SECONDS'])

    def predict_action(self, obs_window):
        self.calls += 1
        if self.calls > self.fast_predictions:
            time.sleep(self.slow_seconds)
        return super().predict_action(obs_window)


if __name__ == '__main__':
    POLICIES[SlowMLPPolicy.name] = SlowMLPPolicy
    raise SystemExit(main())
