//! The real steps of a sync: the Docker Engine, the registry, the SIF converter and runner,
//! Zenodo, and the zoo's write-back.
