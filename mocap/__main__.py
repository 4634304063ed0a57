import sys

from mocap.cli import main

sys.exit(main())
