# The fleet seen from the broker: monitor, fleet state, its table view, CSV rows and plots.
