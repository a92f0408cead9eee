"""Files and the machine: atomic writes and checksums (files), logging, devices and threads (runtime),
run records (records), several processes under torchrun (distributed)."""
