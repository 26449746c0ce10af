"""``python -m lit_mlcourse`` is the same as the ``lit`` command."""

from lit_mlcourse.cli import main

if __name__ == "__main__":
    main()
