from regression_model.cli import main

raise SystemExit(main())
