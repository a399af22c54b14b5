"""The command line: main (the Typer app and `main`, every command registered), data, train,
serve and gc (the commands of each part), options (the flags built from RetrainConfig), errors
(one exit code and message per error kind). The top of the core: nothing else imports it."""
