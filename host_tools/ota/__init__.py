# Updates over the air, the host's side: bundles, the fleet's keys, and staged rollouts.
