from chatreid.cli import main

raise SystemExit(main())
