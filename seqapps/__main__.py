from seqapps.cli import main

raise SystemExit(main())
