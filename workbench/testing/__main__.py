"""Run the OpenAI-compatible test server in its own process: ``python -m workbench.testing --latency 1``.

A benchmark's client then does not share its interpreter lock with the server's request handling,
as with a real endpoint. Prints the base URL on one line and serves until stdin closes.
"""

import argparse
import sys

from workbench.llm.scripted import _message_text
from workbench.testing.openai_test_server import OpenAITestServer


def echo_tail(messages: list[dict]) -> str:
    return "ok " + _message_text(messages[-1])[-12:] if messages else "ok"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with OpenAITestServer(responder=echo_tail, latency_s=args.latency, port=args.port) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
