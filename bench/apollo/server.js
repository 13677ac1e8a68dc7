// Contender (b) of bench/graphql.sh: the usual alternative to Marquee's query API, Apollo Server
// with mysql2, serving the contract's `movies` query from the same read-model tables with the
// same SQL as query-api's catalogue (rm_movies joined to rm_users for the adder's name, MySQL
// FULLTEXT in boolean mode with every word a required prefix, keyset pagination, never OFFSET).
//
//   DATABASE_URL=mysql://root@127.0.0.1:3306/marquee_bench_graphql_100k PORT=4000 node server.js
//
// POOL_SIZE (default 16, Marquee's MARQUEE_DB_MAX_CONNECTIONS default) sizes the mysql2 pool.
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { GraphQLError } from 'graphql';
import mysql from 'mysql2/promise';

const typeDefs = `#graphql
  scalar DateTime
  type Query {
    movies(first: Int = 20, after: String, filter: MovieFilter, orderBy: MovieOrder = ADDED_AT_DESC): MovieConnection!
  }
  input MovieFilter { search: String, year: Int, genre: String, director: String }
  enum MovieOrder { ADDED_AT_DESC, TITLE_ASC, YEAR_DESC }
  type MovieConnection { edges: [MovieEdge!]!, pageInfo: PageInfo!, totalCount: Int! }
  type MovieEdge { cursor: String!, node: Movie! }
  type PageInfo { hasNextPage: Boolean!, endCursor: String }
  type Movie { id: ID!, title: String!, year: Int!, director: String!, genres: [String!]!,
               description: String!, posterUrl: String, addedBy: String!, addedAt: DateTime!,
               updatedAt: DateTime!, version: Int!, removed: Boolean! }
`;

const MAX_FIRST = 100;
// As query-api's catalogue (query-api/src/catalogue.rs): the adder's name from a join.
const COLUMNS =
  'm.id, m.title, m.year, m.director, m.genres, m.description, m.poster_key, m.thumbnail_key, ' +
  'COALESCE(u.username, m.added_by) AS added_by, m.added_at, m.updated_at, m.version, m.removed, m.position';
// Each order's keyset: the sort column and the id as tie-breaker, both in one direction.
const ORDERS = {
  ADDED_AT_DESC: { column: 'm.added_at', direction: 'DESC', key: (row) => row.added_at },
  TITLE_ASC: { column: 'm.title', direction: 'ASC', key: (row) => row.title },
  YEAR_DESC: { column: 'm.year', direction: 'DESC', key: (row) => Number(row.year) },
};
// InnoDB's default full-text stopwords and shortest indexed word: a required one matches nothing.
const STOPWORDS = new Set([
  'a', 'about', 'an', 'are', 'as', 'at', 'be', 'by', 'com', 'de', 'en', 'for', 'from', 'how',
  'i', 'in', 'is', 'it', 'la', 'of', 'on', 'or', 'that', 'the', 'this', 'to', 'was', 'what',
  'when', 'where', 'who', 'will', 'with', 'und', 'www',
]);
const MIN_TOKEN = 3;

const pool = mysql.createPool({
  uri: process.env.DATABASE_URL,
  connectionLimit: Number(process.env.POOL_SIZE ?? 16),
});

const encodeCursor = (order, key, id) =>
  Buffer.from(JSON.stringify({ o: order, k: key, id })).toString('base64url');

function decodeCursor(cursor, order) {
  let decoded;
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    decoded = null;
  }
  if (decoded?.o !== order || typeof decoded.id !== 'string') {
    throw new GraphQLError('`after` is not a cursor of this order', {
      extensions: { code: 'BAD_USER_INPUT' },
    });
  }
  return decoded;
}

// Boolean mode with every indexable word required as a prefix; user input never becomes syntax.
function booleanModeQuery(search) {
  const terms = search
    .split(/[^\p{L}\p{N}]+/u)
    .map((word) => word.toLowerCase())
    .filter((word) => [...word].length >= MIN_TOKEN && !STOPWORDS.has(word))
    .map((word) => `+${word}*`);
  return terms.length > 0 ? terms.join(' ') : null;
}

// The filter's WHERE clause and its parameters, shared by the page and totalCount; null when
// the filter can match nothing.
function where(filter) {
  const clauses = ['m.removed = 0'];
  const params = [];
  if (filter?.search != null) {
    const expression = booleanModeQuery(filter.search);
    if (expression === null) return null;
    clauses.push('MATCH (m.title, m.director, m.description) AGAINST (? IN BOOLEAN MODE)');
    params.push(expression);
  }
  if (filter?.year != null) {
    clauses.push('m.year = ?');
    params.push(filter.year);
  }
  if (filter?.genre != null) {
    clauses.push('m.id IN (SELECT g.movie_id FROM rm_movie_genres g WHERE g.genre = ?)');
    params.push(filter.genre.trim());
  }
  if (filter?.director != null) {
    clauses.push('m.director = ?');
    params.push(filter.director.trim());
  }
  return { clauses, params };
}

const posterUrl = (key) => (key ? `${process.env.POSTER_BASE_URL ?? '/posters'}/${key}` : null);

const movie = (row) => ({
  id: row.id,
  title: row.title,
  year: Number(row.year),
  director: row.director,
  genres: JSON.parse(row.genres),
  description: row.description,
  posterUrl: posterUrl(row.poster_key),
  addedBy: row.added_by,
  addedAt: row.added_at,
  updatedAt: row.updated_at,
  version: Number(row.version),
  removed: Number(row.removed) !== 0,
});

const emptyPage = { edges: [], pageInfo: { hasNextPage: false, endCursor: null }, totalCount: 0 };

const resolvers = {
  Query: {
    async movies(_, { first, after, filter, orderBy }) {
      if (first < 0 || first > MAX_FIRST) {
        throw new GraphQLError(`first must be between 0 and ${MAX_FIRST}`, {
          extensions: { code: 'BAD_USER_INPUT' },
        });
      }
      const order = ORDERS[orderBy];
      const filtered = where(filter);
      if (filtered === null) return emptyPage;
      const { clauses, params } = filtered;
      const page = [...clauses];
      const pageParams = [...params];
      if (after) {
        const cursor = decodeCursor(after, orderBy);
        const op = order.direction === 'DESC' ? '<' : '>';
        page.push(`(${order.column} ${op} ? OR (${order.column} = ? AND m.id ${op} ?))`);
        pageParams.push(cursor.k, cursor.k, cursor.id);
      }
      // One row more than asked for says whether there is a next page.
      const [rows] = await pool.query(
        `SELECT ${COLUMNS} FROM rm_movies m LEFT JOIN rm_users u ON u.id = m.added_by ` +
          `WHERE ${page.join(' AND ')} ` +
          `ORDER BY ${order.column} ${order.direction}, m.id ${order.direction} LIMIT ?`,
        [...pageParams, first + 1],
      );
      const shown = rows.slice(0, first);
      const edges = shown.map((row) => ({ cursor: encodeCursor(orderBy, order.key(row), row.id), node: movie(row) }));
      return {
        edges,
        pageInfo: { hasNextPage: rows.length > first, endCursor: edges.at(-1)?.cursor ?? null },
        // Counted only when a client asks for it.
        totalCount: async () => {
          const [[{ count }]] = await pool.query(
            `SELECT COUNT(*) AS count FROM rm_movies m WHERE ${clauses.join(' AND ')}`,
            params,
          );
          return Number(count);
        },
      };
    },
  },
};

const server = new ApolloServer({ typeDefs, resolvers });
const { url } = await startStandaloneServer(server, {
  listen: { host: '127.0.0.1', port: Number(process.env.PORT ?? 4000) },
});
console.log(`Apollo Server ready at ${url}`);
