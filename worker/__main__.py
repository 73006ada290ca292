from grant_worker.worker.cli import main

main()
