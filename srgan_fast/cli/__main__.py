import sys

from srgan_fast.cli.main import main

sys.exit(main())
