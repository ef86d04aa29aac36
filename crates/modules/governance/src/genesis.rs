//! The founding organisations and their admins, written in block 1.

use crate::Gov;
use consort_execution::{BlockError, Runtime, Store};
use consort_types::{
    gov::{GovState, Org, Registration, role},
    state_key::gov as key,
};

impl Gov {
    /// Write the founding organisations and their admins (block 1).
    pub async fn init<E: Runtime>(&self, store: &mut Store<'_, E>) -> Result<(), BlockError> {
        let mut state = GovState::default();
        for org in &self.config.organisations {
            store
                .put(
                    &key::org(&org.id),
                    &Org {
                        id: org.id,
                        kind: org.kind,
                        active: true,
                        admitted_at: 0,
                    },
                )
                .await?;
            state.members.0.push(org.id);
            for admin in &org.admins {
                store
                    .put(
                        &key::registration(admin),
                        &Registration {
                            org: org.id,
                            roles: org.kind.grantable(),
                            active: true,
                        },
                    )
                    .await?;
            }
        }
        for customer in &self.config.customers {
            if store
                .get::<Registration>(&key::registration(customer))
                .await?
                .is_none()
            {
                store
                    .put(
                        &key::registration(customer),
                        &Registration {
                            org: self.config.registrar,
                            roles: role::CUSTOMER,
                            active: true,
                        },
                    )
                    .await?;
            }
        }
        Ok(store.put(&key::state(), &state).await?)
    }
}
