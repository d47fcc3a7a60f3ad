# Adapters: the only firmware code that touches machine, network, esp32 or ntptime.
