import sys

from host_tools.demo.run import main

sys.exit(main())
