//! Removing what this tool created, and nothing else (label filters).

use std::collections::HashMap;

use bollard::query_parameters::{
    ListContainersOptionsBuilder, PruneImagesOptionsBuilder, PruneNetworksOptionsBuilder,
    PruneVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
};

use super::error::api;
use super::{DockerError, Engine, CREATED_BY_LABEL, CREATED_BY_VALUE, RUN_BY_LABEL};

/// What a cleanup removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub containers: Vec<String>,
    pub images: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

impl Engine {
    /// Removes what this tool created: its stopped containers, networks and volumes; with
    /// `images`, also its dangling images (upstream's `cleanup(images=True)`). Other
    /// users' objects are never touched (label filter).
    pub async fn cleanup(&self, images: bool) -> Result<CleanupReport, DockerError> {
        let label = format!("{CREATED_BY_LABEL}={CREATED_BY_VALUE}");
        let filters: HashMap<String, Vec<String>> =
            HashMap::from([("label".into(), vec![label.clone()])]);
        // Like `docker container prune`, only stopped containers: a test still running
        // (in this or another process) is never killed.
        let run_by: HashMap<String, Vec<String>> = HashMap::from([
            (
                "label".into(),
                vec![format!("{RUN_BY_LABEL}={CREATED_BY_VALUE}")],
            ),
            (
                "status".into(),
                vec!["created".into(), "exited".into(), "dead".into()],
            ),
        ]);
        let mut report = CleanupReport::default();
        let containers = self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&run_by)
                    .build(),
            ))
            .await
            .map_err(api("listing containers"))?;
        for c in containers {
            if let Some(id) = c.id {
                self.docker
                    .remove_container(
                        &id,
                        Some(
                            RemoveContainerOptionsBuilder::default()
                                .force(true)
                                .v(true)
                                .build(),
                        ),
                    )
                    .await
                    .map_err(api(format!("removing container {id}")))?;
                report.containers.push(id);
            }
        }
        if images {
            let mut dangling = filters.clone();
            dangling.insert("dangling".into(), vec!["true".into()]);
            let pruned = self
                .docker
                .prune_images(Some(
                    PruneImagesOptionsBuilder::default()
                        .filters(&dangling)
                        .build(),
                ))
                .await
                .map_err(api("pruning dangling images"))?;
            report.images.extend(
                pruned
                    .images_deleted
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|d| d.deleted.or(d.untagged)),
            );
        }
        let nets = self
            .docker
            .prune_networks(Some(
                PruneNetworksOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(api("pruning networks"))?;
        report.networks = nets.networks_deleted.unwrap_or_default();
        let vols = self
            .docker
            .prune_volumes(Some(
                PruneVolumesOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(api("pruning volumes"))?;
        report.volumes = vols.volumes_deleted.unwrap_or_default();
        Ok(report)
    }
}
