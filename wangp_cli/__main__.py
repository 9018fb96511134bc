from wangp_cli.cli import main

main()
