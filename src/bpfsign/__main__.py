from bpfsign.cli import main

raise SystemExit(main())
