from ticketpack.cli.app import main

main()
