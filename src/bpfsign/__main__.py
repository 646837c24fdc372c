from bpfsign._cli import main

raise SystemExit(main())
