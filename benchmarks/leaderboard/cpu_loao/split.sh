# bundle14's patient split, as make_dense_detector.py / recalibrate_dense.py arguments (sourced by run.sh and
# decide.sh): validation 93ad6a50 (LIDC-0003), test 3bb5d67a (LIDC-0001), the rest training
S=(--split-of 93ad6a507f90=val --split-of 3bb5d67ab461=test --split-of 3ad2ceaeb677=train
   --split-of f255db4ba233=train)
