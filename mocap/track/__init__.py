"""Track: persistent identities over time (:mod:`.linking`) and smoothed trajectories (:mod:`.smoothing`)."""
