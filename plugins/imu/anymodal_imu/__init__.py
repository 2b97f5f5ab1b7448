"""anymodal-imu: the ``imu`` modality (6-axis IMU recordings as ImageBind's 6 x 2000 input)."""
