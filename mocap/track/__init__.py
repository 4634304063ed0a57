"""Track: persistent identities over time (:mod:`.linking` by body centres, :mod:`.affinity` by the
tracks' projections in the images), every performer's views over the take (:mod:`.people`), and
their joints followed over time: the unscented Kalman filter on the 2D evidence (:mod:`.ukf`,
:mod:`.filter_people`) or the Kalman/RTS smoother of the 3D (:mod:`.smoothing`)."""
