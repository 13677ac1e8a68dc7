"""The contract's GraphQL queries and a subscription, run by Python's gql: a client no one here
wrote, over HTTP (aiohttp) and WebSocket (graphql-transport-ws).

    python contract.py --url http://127.0.0.1:8080 --user-token T --admin-token T \
        --auditor-token T --search WORD [--min-position N]

Prints one JSON object with every answer and exits 1 if anything failed (a GraphQL error where
data was expected, data where a refusal was expected, or no movieChanged in time). The Rust test
tests/tests/graphql_client.rs runs it against the real app and checks the values.
"""

import argparse
import asyncio
import json
import sys
import traceback

import aiohttp
from gql import Client, GraphQLRequest
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

MOVIE_FIELDS = """
    id title year director genres description posterUrl addedBy addedAt updatedAt version removed
"""

MOVIES = f"""
query Movies($first: Int, $after: String, $filter: MovieFilter, $orderBy: MovieOrder) {{
  movies(first: $first, after: $after, filter: $filter, orderBy: $orderBy) {{
    totalCount
    pageInfo {{ hasNextPage endCursor }}
    edges {{ cursor node {{ {MOVIE_FIELDS} }} }}
  }}
}}"""

MOVIE = f"query Movie($id: ID!) {{ movie(id: $id) {{ {MOVIE_FIELDS} }} }}"

ME = """
query { me { id username email roles passkeys logins(first: 5) { at method succeeded ip } } }"""

EVENTS = """
query Events($first: Int, $after: String, $aggregateId: ID) {
  events(first: $first, after: $after, aggregateId: $aggregateId) {
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      position aggregateType aggregateId sequence eventType schemaVersion payload metadata
      recordedAt hash prevHash
    } }
  }
}"""

LEDGER = "query { ledger { intact checkedEvents firstBrokenPosition lastCheckpoint } }"

STATS = """
query { stats { movies users moviesAddedToday loginsToday failedLoginsToday projectionLag } }"""

METRICS = """
query Metrics($name: String!) { metrics(name: $name, periodSeconds: 60) { at value } }"""

PROJECTIONS = "query { projections { name position lag lastError } }"

MOVIE_CHANGED = f"""
subscription {{ movieChanged {{ kind position movie {{ {MOVIE_FIELDS} }} }} }}"""

# How long the subscription may take to deliver a movie added after it started.
SUBSCRIPTION_SECONDS = 15


class Run:
    def __init__(self, args):
        self.args = args
        self.results = {}
        self.failures = []

    def http_client(self, token, min_position=None):
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if min_position is not None:
            headers["X-Min-Position"] = str(min_position)
        transport = AIOHTTPTransport(url=f"{self.args.url}/graphql", headers=headers)
        return Client(transport=transport, execute_timeout=30)

    async def query(self, name, token, document, variables=None, min_position=None):
        """Runs `document`; keeps its data under `name`, or records a failure."""
        try:
            async with self.http_client(token, min_position) as session:
                request = GraphQLRequest(document, variable_values=variables)
                data = await session.execute(request)
            self.results[name] = data
            return data
        except Exception as error:  # every kind of failure is reported, none is fatal
            self.failures.append({"step": name, "error": describe(error)})
            return None

    async def refused(self, name, token, document):
        """Runs `document` expecting a GraphQL error (the role may not see it)."""
        try:
            async with self.http_client(token) as session:
                data = await session.execute(GraphQLRequest(document))
            self.failures.append({"step": name, "error": f"expected a refusal, got {data}"})
        except TransportQueryError as error:
            self.results[name] = {"errors": error.errors}
        except Exception as error:
            self.failures.append({"step": name, "error": describe(error)})

    async def subscription(self):
        """Subscribes to movieChanged over graphql-transport-ws, then adds movies through the
        command API until one of them arrives: the server gives no sign of when a subscription
        has started, so adding one movie once could race it."""
        ws_url = self.args.url.replace("http://", "ws://", 1) + "/graphql/ws"
        transport = WebsocketsTransport(
            url=ws_url,
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
            init_payload={"Authorization": f"Bearer {self.args.user_token}"},
            headers={"Authorization": f"Bearer {self.args.user_token}"},
        )
        added = []
        try:
            async with Client(transport=transport, execute_timeout=None) as session:
                received = asyncio.Queue()

                async def listen():
                    async for change in session.subscribe(GraphQLRequest(MOVIE_CHANGED)):
                        await received.put(change)

                listener = asyncio.create_task(listen())
                try:
                    deadline = asyncio.get_running_loop().time() + SUBSCRIPTION_SECONDS
                    while True:
                        remaining = deadline - asyncio.get_running_loop().time()
                        if remaining <= 0:
                            raise TimeoutError(
                                f"no movieChanged for {added} within {SUBSCRIPTION_SECONDS} s"
                            )
                        added.append(await self.add_movie(f"Subscribed {len(added) + 1}"))
                        try:
                            change = await asyncio.wait_for(received.get(), min(1.0, remaining))
                        except asyncio.TimeoutError:
                            if listener.done():
                                listener.result()  # raises what ended the subscription
                            continue
                        if change["movieChanged"]["movie"]["id"] in added:
                            self.results["subscription"] = {
                                "transport": transport.subprotocol,
                                "added": added,
                                "change": change["movieChanged"],
                            }
                            return
                finally:
                    listener.cancel()
        except Exception as error:
            self.failures.append({"step": "subscription", "error": describe(error)})

    async def add_movie(self, title):
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{self.args.url}/api/movies",
                headers={"Authorization": f"Bearer {self.args.user_token}"},
                json={
                    "title": title,
                    "year": 1982,
                    "director": "Ridley Scott",
                    "genres": ["Science Fiction"],
                    "description": "Added while a GraphQL subscription listens.",
                },
            ) as response:
                body = await response.json()
                if response.status != 201:
                    raise RuntimeError(f"POST /api/movies answered {response.status}: {body}")
                return body["id"]

    async def run(self):
        a = self.args
        search = {"filter": {"search": a.search}, "orderBy": "TITLE_ASC"}
        first = await self.query(
            "moviesPage1", None, MOVIES, {"first": 2, **search}, min_position=a.min_position
        )
        if first:
            cursor = first["movies"]["pageInfo"]["endCursor"]
            await self.query("moviesPage2", None, MOVIES, {"first": 2, "after": cursor, **search})
            edges = first["movies"]["edges"]
            if edges:
                await self.query("movie", None, MOVIE, {"id": edges[0]["node"]["id"]})
        await self.query("moviesAll", None, MOVIES, {"first": 100})
        await self.query("me", a.user_token, ME)
        await self.query("events", a.auditor_token, EVENTS, {"first": 5})
        await self.query("eventsAsAdmin", a.admin_token, EVENTS, {"first": 1})
        await self.query("ledger", a.auditor_token, LEDGER)
        await self.query("stats", a.admin_token, STATS)
        await self.query("metrics", a.admin_token, METRICS, {"name": "MoviesAdded"})
        await self.query("projections", a.admin_token, PROJECTIONS)
        await self.refused("eventsRefusedToUser", a.user_token, EVENTS)
        await self.refused("statsRefusedToAnonymous", None, STATS)
        await self.subscription()


def describe(error):
    if isinstance(error, TransportQueryError):
        return f"GraphQL errors: {error.errors}"
    return "".join(traceback.format_exception_only(type(error), error)).strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--user-token", required=True)
    parser.add_argument("--admin-token", required=True)
    parser.add_argument("--auditor-token", required=True)
    parser.add_argument("--search", required=True, help="a word in the movies to search for")
    parser.add_argument("--min-position", type=int, help="X-Min-Position of the first query")
    run = Run(parser.parse_args())
    asyncio.run(run.run())
    print(json.dumps({"results": run.results, "failures": run.failures}, indent=2))
    sys.exit(1 if run.failures else 0)


if __name__ == "__main__":
    main()
