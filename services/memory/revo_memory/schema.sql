-- The memory service's schema (applied at start-up, idempotent). ${dimensions} is the
-- dimension of the embedding model, asked of inference.embed at start-up; a table made for
-- another dimension stops the start with an error (its vectors would not compare).
CREATE EXTENSION IF NOT EXISTS vector;
CREATE SCHEMA IF NOT EXISTS memory;

-- What the stored vectors are: the model that made them.
CREATE TABLE IF NOT EXISTS memory.embedding_model (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    model       text NOT NULL,
    dimensions  integer NOT NULL
);

-- The current version of every memory. A scope field a memory does not have is '' (not
-- NULL), so scopes compare with plain equality and index well.
CREATE TABLE IF NOT EXISTS memory.memories (
    id          uuid PRIMARY KEY,
    tenant      text NOT NULL,
    repository  text NOT NULL DEFAULT '',
    agent       text NOT NULL DEFAULT '',
    user_id     text NOT NULL DEFAULT '',
    kind        text NOT NULL,
    text        text NOT NULL,
    tags        text[] NOT NULL DEFAULT '{}',
    source_run  text,
    version     integer NOT NULL DEFAULT 1,
    embedding   vector(${dimensions}) NOT NULL,
    -- English words, stemmed, for websearch_to_tsquery('english', ...).
    tsv         tsvector NOT NULL,
    -- Identifiers kept whole, lowercased (`test_parse_header`, `e1234`): see text.py.
    idents      text[] NOT NULL DEFAULT '{}',
    tokens      integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz
);
CREATE INDEX IF NOT EXISTS memories_scope
    ON memory.memories (tenant, repository, agent, user_id, kind);
CREATE INDEX IF NOT EXISTS memories_embedding ON memory.memories
    USING hnsw (embedding vector_cosine_ops)
    WITH (m = ${hnsw_m}, ef_construction = ${hnsw_ef_construction});
CREATE INDEX IF NOT EXISTS memories_tsv ON memory.memories USING gin (tsv);
CREATE INDEX IF NOT EXISTS memories_idents ON memory.memories USING gin (idents);
CREATE INDEX IF NOT EXISTS memories_expiry ON memory.memories (expires_at)
    WHERE expires_at IS NOT NULL;

-- Every version of every memory, the current one included; gone with the memory.
CREATE TABLE IF NOT EXISTS memory.versions (
    memory_id    uuid NOT NULL REFERENCES memory.memories (id) ON DELETE CASCADE,
    version      integer NOT NULL,
    tenant       text NOT NULL,
    action       text NOT NULL CHECK (action IN ('created', 'updated')),
    kind         text NOT NULL,
    text         text NOT NULL,
    tags         text[] NOT NULL DEFAULT '{}',
    source_run   text,
    -- updated: similarity of this text to the previous version's.
    similarity   real,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (memory_id, version)
);
