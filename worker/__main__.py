from grant_worker.worker.cli.main import main

main()
