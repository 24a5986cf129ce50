"""A tiny shop instrumented with exporter.client: operations, caches, pools and queues.

    apm-exporter --config.file config.yaml &        # StatsD on 127.0.0.1:8125
    python examples/shop.py --redis redis://127.0.0.1:6379/0 --duration 300

Products live in SQLite (through a SQLAlchemy pool), prices are cached in an
lru_cache (L1) in front of Redis (L2), checkouts put orders on a queue that a
worker drains in batches. `--duration` keeps traffic going for that many seconds
(the dashboards use it); without it, one round runs and the process exits.
"""

from __future__ import annotations

import argparse
import functools
import queue
import random
import threading
import time

import redis
import sqlalchemy as sa

from exporter.client import Telemetry

tm = Telemetry()  # $APM_STATSD_ADDRESS or 127.0.0.1:8125


class OutOfStock(Exception):
    pass


def setup(db_path: str, redis_url: str) -> tuple[sa.Engine, redis.Redis]:
    engine = sa.create_engine(f"sqlite:///{db_path}", poolclass=sa.QueuePool, pool_size=4, max_overflow=2,
                              pool_timeout=1)
    with engine.begin() as db:
        db.execute(sa.text("CREATE TABLE IF NOT EXISTS product (id INTEGER PRIMARY KEY, price REAL, stock INT)"))
        db.execute(sa.text("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, product INT, qty INT)"))
        db.execute(sa.text("INSERT OR REPLACE INTO product VALUES (:id, :price, :stock)"),
                   [{"id": i, "price": round(random.uniform(1, 100), 2), "stock": 1000} for i in range(200)])
    cache = redis.Redis.from_url(redis_url)
    tm.instrument_sqlalchemy(engine, "shop-db")  # pool: active/idle/max, wait time, timeouts
    tm.instrument_redis(cache, "shop-redis")  # the Redis client's pool
    return engine, cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--db", default="shop.db")
    parser.add_argument("--duration", type=float, default=0, help="keep producing traffic for N seconds")
    parser.add_argument("--rate", type=float, default=50, help="checkouts per second")
    args = parser.parse_args()
    engine, cache = setup(args.db, args.redis)
    prices_l1 = tm.cache("prices", level="l1")  # for promotions; lru_cache counts the rest
    prices_l2 = tm.cache("prices", level="l2")  # a hand-written cache: the plain API

    @tm.instrument_lru_cache("prices", level="l1")  # hits, misses, evictions, size, capacity
    @functools.lru_cache(maxsize=8)  # small, so L1 misses that L2 serves (promotions) come every second
    def price(product: int) -> float:
        cached = cache.get(f"price:{product}")
        if cached is not None:
            prices_l2.hit()
            prices_l1.promotion()  # an L2 hit now lives in L1 too
            return float(cached)
        prices_l2.miss()
        with engine.connect() as db:
            value = db.execute(sa.text("SELECT price FROM product WHERE id = :id"), {"id": product}).scalar_one()
        cache.set(f"price:{product}", value, ex=30)
        return float(value)

    orders: queue.Queue[tuple[int, int]] = queue.Queue()
    tm.instrument_queue(orders, "orders")  # depth, polled every flush

    @tm.timed("checkout")
    def checkout(product: int, qty: int) -> float:
        if random.random() < 0.03:
            raise OutOfStock(product)
        total = price(product) * qty
        orders.put((product, qty))
        return total

    def fulfil() -> None:  # the worker: drains orders in batches
        while True:
            items = [orders.get()]
            while len(items) < 20 and not orders.empty():
                items.append(orders.get_nowait())
            with tm.batch("orders", items) as batch, engine.begin() as db:
                for product, qty in items:
                    if random.random() < 0.02:
                        batch.fail()
                        continue
                    db.execute(sa.text("INSERT INTO orders (product, qty) VALUES (:p, :q)"), {"p": product, "q": qty})
            time.sleep(0.05)

    threading.Thread(target=fulfil, daemon=True).start()
    deadline = time.monotonic() + args.duration
    while True:
        try:
            checkout(int(random.paretovariate(1.2)) % 200, random.randint(1, 3))
        except OutOfStock:
            pass
        if time.monotonic() >= deadline:
            break
        time.sleep(random.expovariate(args.rate))
    while not orders.empty():
        time.sleep(0.05)
    time.sleep(0.1)  # the last batch; Telemetry sends the rest at exit


if __name__ == "__main__":
    main()
