-- The sample database of ./run.sh --demo: a small online bookshop, loaded into
-- a fresh file by the Turso engine's own shell (tursodb FILE < sample.sql).
-- Three tables, two indexes, one view, enough rows to ask questions about.

CREATE TABLE customers (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  email TEXT NOT NULL UNIQUE,
  country TEXT NOT NULL,
  joined_on TEXT NOT NULL
);

CREATE TABLE books (
  id INTEGER PRIMARY KEY,
  title TEXT NOT NULL,
  author TEXT NOT NULL,
  genre TEXT NOT NULL,
  price REAL NOT NULL,
  stock INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE orders (
  id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers (id),
  book_id INTEGER NOT NULL REFERENCES books (id),
  quantity INTEGER NOT NULL,
  ordered_at TEXT NOT NULL,
  note TEXT
);

CREATE INDEX orders_by_customer ON orders (customer_id);
CREATE INDEX books_by_genre ON books (genre);

INSERT INTO customers (id, name, email, country, joined_on) VALUES
  (1, 'Ada Lovelace', 'ada@example.com', 'GB', '2024-01-10'),
  (2, 'Grace Hopper', 'grace@example.com', 'US', '2024-02-03'),
  (3, 'Alan Turing', 'alan@example.com', 'GB', '2024-03-15'),
  (4, 'Katherine Johnson', 'katherine@example.com', 'US', '2024-05-22'),
  (5, 'Edsger Dijkstra', 'edsger@example.com', 'NL', '2024-07-01'),
  (6, 'Hedy Lamarr', 'hedy@example.com', 'AT', '2024-09-09');

INSERT INTO books (id, title, author, genre, price, stock) VALUES
  (1, 'The Art of Computer Programming', 'Donald Knuth', 'computing', 189.99, 4),
  (2, 'Structure and Interpretation of Computer Programs', 'Abelson and Sussman', 'computing', 54.5, 11),
  (3, 'Dune', 'Frank Herbert', 'fiction', 11.99, 25),
  (4, 'The Left Hand of Darkness', 'Ursula K. Le Guin', 'fiction', 9.99, 0),
  (5, 'Godel, Escher, Bach', 'Douglas Hofstadter', 'science', 24.0, 7),
  (6, 'A Brief History of Time', 'Stephen Hawking', 'science', 14.25, 12),
  (7, 'SQLite Internals', 'Various', 'computing', 39.0, 3);

INSERT INTO orders (id, customer_id, book_id, quantity, ordered_at, note) VALUES
  (1, 1, 1, 1, '2025-01-04', NULL),
  (2, 1, 5, 2, '2025-01-04', 'gift wrap'),
  (3, 2, 2, 1, '2025-01-12', NULL),
  (4, 2, 7, 3, '2025-02-01', 'for the team'),
  (5, 3, 3, 1, '2025-02-14', NULL),
  (6, 3, 6, 1, '2025-02-20', NULL),
  (7, 4, 3, 2, '2025-03-02', NULL),
  (8, 4, 4, 1, '2025-03-03', 'backorder'),
  (9, 5, 2, 1, '2025-03-18', NULL),
  (10, 5, 1, 1, '2025-04-01', NULL),
  (11, 6, 6, 4, '2025-04-11', 'school library'),
  (12, 1, 3, 1, '2025-04-30', NULL);

CREATE VIEW customer_spend AS
  SELECT c.id AS customer_id,
         c.name AS customer,
         c.country AS country,
         COUNT(o.id) AS orders,
         SUM(o.quantity) AS books,
         ROUND(SUM(o.quantity * b.price), 2) AS spent
  FROM customers c
  JOIN orders o ON o.customer_id = c.id
  JOIN books b ON b.id = o.book_id
  GROUP BY c.id, c.name, c.country;
