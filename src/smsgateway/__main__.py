from smsgateway.cli import main

raise SystemExit(main())
