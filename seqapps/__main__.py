from seqapps.cli.parser import main

raise SystemExit(main())
