"""``python -m snakepit.adapter``: run a worker process (see ``_main``)."""

from snakepit.adapter._main import main

if __name__ == "__main__":
    main()
