from siyu_cli.cli import main

main()
