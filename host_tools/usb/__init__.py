# Work on a board over USB: the device transport (mpremote), deploy, configure, check, provision.
