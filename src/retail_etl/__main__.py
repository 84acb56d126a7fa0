"""``python -m retail_etl`` is the ``retail-etl`` command."""

from retail_etl.cli.main import main

main()
